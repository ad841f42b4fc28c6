//! The broken-plugin catalogue over the JSON-lines protocol: every broken plugin run as an
//! `exec:` plugin, as the suite runs a plugin written in another language.
//!
//! - `python::<name>`: the out-of-process broken plugins (`selftest/broken-plugins/*.py`),
//!   each the suite's example Python plugin with one thing changed. Each must be caught
//!   by the case named in its docstring (`EXPECTED_CASE`) and those of its `ALSO`; the
//!   unchanged example must pass those same cases (`control::<name>`).
//! - `served::<name>`: every Rust broken plugin of the catalogue, served by this test
//!   binary over the protocol (handles opened in one process, workers in others, faults and
//!   corruption provoked from outside for those whose storage is under the namespace
//!   directory). Each must be caught by the same cases as in process; one whose cases all
//!   need a hook the protocol cannot give it (an in-memory store damaged from inside) is
//!   reported as ignored, saying so.
//!
//! Then the tables, and, when no trial was filtered out, the cases that no plugin trips
//! over the protocol: exactly [`NOT_OVER_PROTOCOL`] may be among them.

#[cfg(unix)]
fn main() {
    // Served plugins re-execute this binary: in a worker, stdout belongs to the protocol.
    conformance_selftest::broken::served::serve_if_worker();
    unix::main();
}

/// The plugins use `fcntl` and the multi-process cases `kill(2)`: Unix only.
#[cfg(not(unix))]
fn main() {}

#[cfg(unix)]
mod table;

#[cfg(unix)]
mod unix {
    use std::{
        collections::BTreeSet,
        path::Path,
        sync::{Arc, Mutex},
        time::Instant,
    };

    use conformance::{Config, EnvSettings, Outcome, Suite, all_cases, protocol::ExecFactory};
    use conformance_selftest::broken::{
        self, BrokenPlugin,
        python::{Program, programs},
        served::exec_command,
    };
    use libtest_mimic::{Arguments, Completion, Failed, Trial};

    use super::table;

    /// Cases that no plugin can fail over the protocol, and why.
    pub const NOT_OVER_PROTOCOL: &[(&str, &str)] = &[(
        "security::blob_not_in_debug",
        "a plugin process has no Debug output the suite can see; what it prints is checked by security::blob_not_in_logs",
    )];

    struct Row {
        source: &'static str,
        name: String,
        rule: String,
        expected: String,
        /// The cases that must fail for it.
        cases: Vec<String>,
        caught: bool,
        seconds: f64,
    }

    type Rows = Arc<Mutex<Vec<Row>>>;

    const EXAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../conformance/examples/file_plugin.py"
    );

    fn python_command(script: &Path) -> String {
        // -B: no __pycache__ beside the scripts.
        format!(
            "python3 -B '{}'",
            script.display().to_string().replace('\'', r"'\''")
        )
    }

    fn config() -> Config {
        let settings = EnvSettings::read().expect("valid CONFORMANCE_* settings");
        let mut config = settings.config();
        config.seed = settings.seed.unwrap_or(7);
        config.rerun = "CONFORMANCE_SEED={seed} cargo test -p conformance-selftest --test catalogue_protocol -- {case}".into();
        config
    }

    /// The outcome of each of `names` for the plugin run by `command`.
    fn run(command: String, names: &[String]) -> Result<Vec<(String, Outcome)>, String> {
        let factory = Arc::new(ExecFactory::new(command));
        let suite = Suite::new(factory.clone(), config())
            .map_err(|e| format!("scratch directory: {e}"))?
            .with_launcher(factory);
        let cases: Vec<_> = all_cases()
            .into_iter()
            .filter(|c| names.iter().any(|n| n == c.name))
            .collect();
        if let Some(missing) = names.iter().find(|n| !cases.iter().any(|c| c.name == *n)) {
            return Err(format!("{missing} is not a case of the suite"));
        }
        let report = suite.run(&cases);
        names
            .iter()
            .map(|name| {
                report
                    .case(name)
                    .map(|c| (name.clone(), c.outcome.clone()))
                    .ok_or_else(|| format!("{name} was not run"))
            })
            .collect()
    }

    /// What did not fail among `outcomes`, one line each; empty when all failed.
    fn missed(plugin: &str, outcomes: &[(String, Outcome)]) -> Vec<String> {
        outcomes
            .iter()
            .filter(|(_, outcome)| !matches!(outcome, Outcome::Failed(_)))
            .map(|(case, outcome)| {
                format!(
                    "{plugin} is not caught by {case}: {} {outcome:?}",
                    outcome.word()
                )
            })
            .collect()
    }

    fn python_trials(program: Program, rows: &Rows) -> [Trial; 2] {
        let p = program.clone();
        let rows = Arc::clone(rows);
        let caught = Trial::test(format!("python::{}", program.name), move || {
            let started = Instant::now();
            let outcomes = run(python_command(&p.path), &p.must_fail())?;
            let missed = missed(&p.name, &outcomes);
            rows.lock().unwrap_or_else(|e| e.into_inner()).push(Row {
                source: "python",
                name: p.name.clone(),
                rule: p.rule.clone(),
                expected: p.expected_case.clone(),
                cases: p.must_fail(),
                caught: missed.is_empty(),
                seconds: started.elapsed().as_secs_f64(),
            });
            match missed.is_empty() {
                true => Ok(()),
                false => Err(Failed::from(missed.join("\n"))),
            }
        });
        // The unchanged example passes the cases that catch the broken one.
        let p = program;
        let control = Trial::test(format!("control::{}", p.name), move || {
            for (case, outcome) in run(python_command(Path::new(EXAMPLE)), &p.must_fail())? {
                if outcome != Outcome::Passed {
                    return Err(Failed::from(format!(
                        "the correct example plugin does not pass {case}: {outcome:?}"
                    )));
                }
            }
            Ok(())
        });
        [caught, control]
    }

    fn served_trial(plugin: BrokenPlugin, exe: &Path, rows: &Rows) -> Trial {
        let rows = Arc::clone(rows);
        let command = exec_command(exe, plugin.name);
        Trial::ignorable_test(format!("served::{}", plugin.name), move || {
            let started = Instant::now();
            let cases: Vec<String> = plugin.must_fail().iter().map(|c| c.to_string()).collect();
            let outcomes = run(command, &cases)?;
            let missed = missed(plugin.name, &outcomes);
            let unreachable = outcomes
                .iter()
                .all(|(_, outcome)| matches!(outcome, Outcome::Skipped(_)));
            if unreachable && !plugin.storage_under_dir {
                return Ok(Completion::ignored_with(format!(
                    "its cases need a hook the protocol cannot give an in-memory plugin: {}",
                    missed.join("; ")
                )));
            }
            rows.lock().unwrap_or_else(|e| e.into_inner()).push(Row {
                source: "served",
                name: plugin.name.to_owned(),
                rule: plugin.rule.to_owned(),
                expected: plugin.expected_case.to_owned(),
                cases,
                caught: missed.is_empty(),
                seconds: started.elapsed().as_secs_f64(),
            });
            match missed.is_empty() {
                true => Ok(Completion::Completed),
                false => Err(Failed::from(missed.join("\n"))),
            }
        })
    }

    pub fn main() {
        let args = Arguments::from_args();
        let unfiltered = args.filter.is_none() && args.skip.is_empty() && !args.list;
        let exe = std::env::current_exe().expect("the test binary can find itself");
        let rows: Rows = Arc::default();
        let mut trials = Vec::new();
        for program in programs() {
            trials.extend(python_trials(program, &rows));
        }
        for plugin in broken::catalogue() {
            trials.push(served_trial(plugin, &exe, &rows));
        }
        let started = Instant::now();
        let conclusion = libtest_mimic::run(&args, trials);
        let rows = rows.lock().unwrap_or_else(|e| e.into_inner());
        print_table(&rows, "python", started);
        print_table(&rows, "served", started);
        if unfiltered && !conclusion.has_failed() {
            let gaps = gaps(&rows);
            if !gaps.is_empty() {
                eprintln!("cases no plugin trips over the protocol: {gaps:?}");
                std::process::exit(101);
            }
            println!(
                "gaps over the protocol: none but {:?}",
                NOT_OVER_PROTOCOL.iter().map(|(c, _)| c).collect::<Vec<_>>()
            );
        }
        conclusion.exit()
    }

    /// Cases of the suite that no plugin caught over the protocol, other than
    /// [`NOT_OVER_PROTOCOL`].
    fn gaps(rows: &[Row]) -> Vec<&'static str> {
        let tripped: BTreeSet<&str> = rows
            .iter()
            .filter(|r| r.caught)
            .flat_map(|r| r.cases.iter().map(String::as_str))
            .chain(NOT_OVER_PROTOCOL.iter().map(|(case, _)| *case))
            .collect();
        all_cases()
            .iter()
            .map(|c| c.name)
            .filter(|name| !tripped.contains(name))
            .collect()
    }

    fn print_table(rows: &[Row], source: &str, started: Instant) {
        let mut rows: Vec<&Row> = rows.iter().filter(|r| r.source == source).collect();
        if rows.is_empty() {
            return;
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let table: Vec<table::TableRow<'_>> = rows
            .iter()
            .map(|r| table::TableRow {
                plugin: &r.name,
                expected: &r.expected,
                caught: r.caught,
                seconds: r.seconds,
                rule: &r.rule,
            })
            .collect();
        let title = match source {
            "python" => {
                "out-of-process broken plugins (selftest/broken-plugins, over the protocol):"
            }
            _ => "the Rust catalogue served over the protocol (exec:):",
        };
        let caught = table::print(title, &table);
        println!(
            "caught {caught}/{} in {:.1}s",
            rows.len(),
            started.elapsed().as_secs_f64()
        );
    }
}
