//! The broken-plugin catalogue against the conformance suite: every broken plugin must be
//! caught by the case named for the rule it breaks, and the correct plugins must pass.
//!
//! One trial per plugin (filterable: `cargo test -p conformance-selftest --test catalogue --
//! memory_no_op_lock`), then a table: plugin, rule, expected failing case, caught or not.
//! A last trial checks that the "Gaps" section of `conformance/README.md` lists exactly the
//! cases no broken plugin trips.
//!
//! Multi-process cases re-execute this binary as workers: with `CONFORMANCE_WORKER=1` and
//! `CATALOGUE_PLUGIN=<name>` it serves that same broken plugin over the protocol instead of
//! running tests. The seed is fixed (7) unless `CONFORMANCE_SEED` is set.

mod table;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use conformance::{
    Config, EnvSettings, Expectations, FileFactory, Outcome, PluginFactory, Report, Suite,
    WorkerLauncher, all_cases, protocol::SelfExecLauncher,
};
use conformance_selftest::broken::{
    self, BrokenPlugin,
    served::{self, PLUGIN_ENV, REFERENCE_FILE},
};
use identity_cache_mocks::InMemoryStore;
use identity_cache_persistence::{CachePersistence, Result};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    // In a worker, stdout belongs to the protocol: dispatch before anything prints.
    served::serve_if_worker();
    let args = Arguments::from_args();
    let rows: Arc<Mutex<Vec<Row>>> = Arc::default();
    let mut trials = vec![
        control_trial(
            "control::reference_file",
            Arc::new(FileFactory::new()),
            Some(REFERENCE_FILE),
            Expectations::none(),
        ),
        control_trial(
            "control::in_memory_persistence",
            Arc::new(InMemory::default()),
            None,
            Expectations::none(),
        ),
    ];
    for control in broken::controls() {
        let name = format!("control::{}", control.name);
        let worker = control.multi_process.then_some(control.name);
        trials.push(control_trial(
            &name,
            Arc::clone(&control.factory),
            worker,
            Expectations::none(),
        ));
    }
    for plugin in broken::catalogue() {
        trials.push(caught_trial(plugin, Arc::clone(&rows)));
    }
    // The gaps are those of the whole catalogue, whose file family is Unix only.
    trials.push(
        Trial::test("catalogue::readme_lists_the_gaps", readme_lists_gaps)
            .with_ignored_flag(!cfg!(unix)),
    );
    let started = Instant::now();
    let conclusion = libtest_mimic::run(&args, trials);
    print_table(
        &rows.lock().unwrap_or_else(|p| p.into_inner()),
        started.elapsed(),
    );
    conclusion.exit()
}

fn config() -> Config {
    let settings = EnvSettings::read().expect("valid CONFORMANCE_* settings");
    let mut config = settings.config();
    config.seed = settings.seed.unwrap_or(7);
    config.rerun =
        "CONFORMANCE_SEED={seed} cargo test -p conformance-selftest --test catalogue -- {case}"
            .into();
    config
}

fn launcher(worker: &str) -> Arc<dyn WorkerLauncher> {
    Arc::new(
        SelfExecLauncher::new()
            .expect("the test binary can find itself to start workers")
            .env(PLUGIN_ENV, worker),
    )
}

fn suite(factory: Arc<dyn PluginFactory>, worker: Option<&str>) -> Suite {
    let suite = Suite::new(factory, config()).expect("a scratch directory for the suite");
    match worker {
        Some(name) => suite.with_launcher(launcher(name)),
        None => suite,
    }
}

/// A correct plugin passes every case that applies to it.
fn control_trial(
    name: &str,
    factory: Arc<dyn PluginFactory>,
    worker: Option<&'static str>,
    expectations: Expectations,
) -> Trial {
    Trial::test(name, move || {
        let report = suite(factory, worker)
            .with_expectations(expectations)
            .run(&all_cases());
        if report.passed() {
            Ok(())
        } else {
            Err(format!(
                "a correct plugin fails:\n{}",
                conformance::report::human(&report)
            )
            .into())
        }
    })
}

/// The correct in-memory plugin, as a factory with its store's hooks.
#[derive(Default)]
struct InMemory {
    store: InMemoryStore,
}

impl PluginFactory for InMemory {
    fn label(&self) -> String {
        "InMemoryPersistence".into()
    }

    fn create(&self, ns: &conformance::Namespace) -> Result<Box<dyn CachePersistence>> {
        Ok(Box::new(self.store.open(&ns.name)?))
    }

    fn corrupt_stored_data(&self, ns: &conformance::Namespace) -> Result<()> {
        self.store.corrupt(&ns.name);
        Ok(())
    }

    fn inject_fault(&self, ns: &conformance::Namespace, fault: conformance::Fault) -> Result<()> {
        use identity_cache_persistence::ErrorKind;
        let kind = match fault {
            conformance::Fault::StorageUnavailable => ErrorKind::StorageUnavailable,
            conformance::Fault::AccessDenied => ErrorKind::AccessDenied,
            conformance::Fault::DiskFull => ErrorKind::StorageFull,
            _ => ErrorKind::Io,
        };
        self.store.inject_fault(&ns.name, kind);
        Ok(())
    }

    fn clear_fault(&self, ns: &conformance::Namespace, _: conformance::Fault) -> Result<()> {
        self.store.clear_fault(&ns.name);
        Ok(())
    }
}

/// One line of the table.
struct Row {
    plugin: &'static str,
    rule: &'static str,
    expected: &'static str,
    caught: bool,
    note: String,
    took: Duration,
}

/// Runs the cases that must fail for `plugin` and checks that each of them does.
fn caught_trial(plugin: BrokenPlugin, rows: Arc<Mutex<Vec<Row>>>) -> Trial {
    let name = format!("caught::{}", plugin.name);
    Trial::test(name, move || {
        let started = Instant::now();
        let verdict = check_caught(&plugin);
        let (caught, note) = match &verdict {
            Ok(note) => (true, note.clone()),
            Err(why) => (false, why.clone()),
        };
        rows.lock().unwrap_or_else(|p| p.into_inner()).push(Row {
            plugin: plugin.name,
            rule: plugin.rule,
            expected: plugin.expected_case,
            caught,
            note,
            took: started.elapsed(),
        });
        verdict.map(drop).map_err(Failed::from)
    })
}

/// `Ok(note)` when every case of `plugin.must_fail()` failed; otherwise what did not.
fn check_caught(plugin: &BrokenPlugin) -> std::result::Result<String, String> {
    let names: Vec<String> = plugin.must_fail().iter().map(|s| s.to_string()).collect();
    let all = all_cases();
    let cases: Vec<_> = all
        .iter()
        .filter(|c| names.iter().any(|n| n == c.name))
        .copied()
        .collect();
    if let Some(missing) = names
        .iter()
        .find(|n| !cases.iter().any(|c| c.name == n.as_str()))
    {
        return Err(format!("{missing} is not a case of the suite"));
    }
    let worker = plugin.multi_process.then_some(plugin.name);
    let report = suite(Arc::clone(&plugin.factory), worker).run(&cases);
    let mut problems = Vec::new();
    for name in &names {
        match report.case(name).map(|c| &c.outcome) {
            Some(Outcome::Failed(_)) => {}
            Some(other) => problems.push(format!("{name}: {} ({})", other.word(), detail(other))),
            None => problems.push(format!("{name}: not run")),
        }
    }
    if report.passed() || !problems.is_empty() {
        return Err(format!(
            "not caught: {}\n{}",
            problems.join("; "),
            conformance::report::human(&report)
        ));
    }
    Ok(first_failure(&report, plugin.expected_case))
}

fn detail(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Skipped(reason) => reason.clone(),
        Outcome::KnownGap { reason, .. } => reason.clone(),
        _ => String::new(),
    }
}

/// What the expected case reported, shortened for the table.
fn first_failure(report: &Report, case: &str) -> String {
    match report.case(case).map(|c| &c.outcome) {
        Some(Outcome::Failed(f)) => {
            let mut actual = f.actual.replace('\n', " ");
            if actual.len() > 90 {
                let mut cut = 90;
                while !actual.is_char_boundary(cut) {
                    cut -= 1;
                }
                actual.truncate(cut);
                actual.push('…');
            }
            actual
        }
        _ => String::new(),
    }
}

fn print_table(rows: &[Row], elapsed: Duration) {
    if rows.is_empty() {
        return;
    }
    let mut rows: Vec<&Row> = rows.iter().collect();
    let order: Vec<&str> = broken::catalogue().iter().map(|p| p.name).collect();
    rows.sort_by_key(|r| order.iter().position(|n| *n == r.plugin));
    let table: Vec<table::TableRow<'_>> = rows
        .iter()
        .map(|r| table::TableRow {
            plugin: r.plugin,
            expected: r.expected,
            caught: r.caught,
            seconds: r.took.as_secs_f64(),
            rule: r.rule,
        })
        .collect();
    let caught = table::print(
        &format!("broken-plugin catalogue: {} plugins", rows.len()),
        &table,
    );
    println!(
        "caught {caught}/{} ({:.0}%) in {:.1}s",
        rows.len(),
        100.0 * caught as f64 / rows.len() as f64,
        elapsed.as_secs_f64()
    );
    for r in rows.iter().filter(|r| !r.caught) {
        println!("\n{} NOT CAUGHT:\n{}", r.plugin, r.note);
    }
    if rows.len() == broken::catalogue().len() {
        let gaps = gaps();
        if gaps.is_empty() {
            println!("gaps: none (every case of the suite is tripped by a broken plugin)");
        } else {
            println!("gaps (cases no broken plugin trips): {}", gaps.join(", "));
        }
    }
}

/// Cases of the suite that no broken plugin must fail.
fn gaps() -> Vec<String> {
    let tripped: BTreeSet<&str> = broken::catalogue()
        .iter()
        .flat_map(BrokenPlugin::must_fail)
        .collect();
    all_cases()
        .iter()
        .filter(|c| !tripped.contains(c.name))
        .map(|c| c.name.to_string())
        .collect()
}

/// The heading of the gap section in `conformance/README.md`.
const GAPS_HEADING: &str = "## Gaps: cases no broken plugin trips yet";

/// The README's gap section names exactly the cases [`gaps`] finds.
fn readme_lists_gaps() -> std::result::Result<(), Failed> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../conformance/README.md");
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let section = text
        .split_once(GAPS_HEADING)
        .map(|(_, rest)| rest.split("\n## ").next().unwrap_or(rest))
        .ok_or_else(|| format!("{path} has no section {GAPS_HEADING:?}"))?;
    // A gap is a list item that starts with the case name: "- `area::case`: why".
    let listed: BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("- `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string())
        .collect();
    let found: BTreeSet<String> = gaps().into_iter().collect();
    if listed == found {
        return Ok(());
    }
    Err(format!(
        "{path}, section {GAPS_HEADING:?}, is out of date.\n  listed but tripped or unknown: {:?}\n  gaps not listed: {:?}",
        listed.difference(&found).collect::<Vec<_>>(),
        found.difference(&listed).collect::<Vec<_>>()
    )
    .into())
}
