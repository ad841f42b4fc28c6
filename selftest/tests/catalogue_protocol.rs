//! The out-of-process broken plugins (`selftest/broken-plugins/*.py`): each is the suite's
//! example Python plugin with one thing changed, and must be caught through the JSON-lines
//! protocol by the case named in its docstring (`EXPECTED_CASE = "..."`, next to
//! `RULE = "..."`), and by the cases of an optional `ALSO = "case, case"` (the same rule
//! seen from another side). The unchanged example must pass those same cases. Prints the
//! table: plugin, rule, expected failing case, caught or not.
//!
//! Every handle and every worker is a `python3` process (`exec:` plugins).

#[cfg(unix)]
fn main() {
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
        path::{Path, PathBuf},
        sync::{Arc, Mutex},
        time::Instant,
    };

    use conformance::{Config, EnvSettings, Outcome, Suite, all_cases, protocol::ExecFactory};

    use super::table;
    use libtest_mimic::{Arguments, Failed, Trial};

    /// One broken plugin program.
    #[derive(Debug, Clone)]
    struct Program {
        name: String,
        path: PathBuf,
        rule: String,
        expected_case: String,
        /// Other cases that must fail for it too.
        also: Vec<String>,
    }

    impl Program {
        /// Every case that must fail for it: the expected case first.
        fn must_fail(&self) -> Vec<String> {
            std::iter::once(self.expected_case.clone())
                .chain(self.also.iter().cloned())
                .collect()
        }
    }

    struct Row {
        name: String,
        rule: String,
        expected: String,
        caught: bool,
        seconds: f64,
    }

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/broken-plugins");
    const EXAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../conformance/examples/file_plugin.py"
    );

    /// `KEY = "value"` from a script's docstring.
    fn field(text: &str, key: &str) -> Option<String> {
        text.lines().find_map(|line| {
            let rest = line.trim().strip_prefix(key)?.trim().strip_prefix('=')?;
            Some(rest.trim().trim_matches('"').to_string())
        })
    }

    fn programs() -> Vec<Program> {
        let mut found: Vec<Program> = std::fs::read_dir(DIR)
            .expect("selftest/broken-plugins exists")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "py")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('_'))
            })
            .map(|path| {
                let text = std::fs::read_to_string(&path).expect("readable script");
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Program {
                    rule: field(&text, "RULE")
                        .unwrap_or_else(|| panic!("{name}: no RULE in its docstring")),
                    expected_case: field(&text, "EXPECTED_CASE")
                        .unwrap_or_else(|| panic!("{name}: no EXPECTED_CASE in its docstring")),
                    also: field(&text, "ALSO")
                        .map(|list| list.split(',').map(|c| c.trim().to_string()).collect())
                        .unwrap_or_default(),
                    name,
                    path,
                }
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    fn command(script: &Path) -> String {
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

    pub fn main() {
        let args = Arguments::from_args();
        let rows: Arc<Mutex<Vec<Row>>> = Arc::default();
        let mut trials = Vec::new();
        for program in programs() {
            let rows = Arc::clone(&rows);
            let p = program.clone();
            trials.push(Trial::test(
                format!("caught::{}", program.name),
                move || {
                    let started = Instant::now();
                    let outcomes = run(command(&p.path), &p.must_fail())?;
                    let missed: Vec<_> = outcomes
                        .iter()
                        .filter(|(_, outcome)| !matches!(outcome, Outcome::Failed(_)))
                        .collect();
                    let caught = missed.is_empty();
                    rows.lock().unwrap_or_else(|e| e.into_inner()).push(Row {
                        name: p.name.clone(),
                        rule: p.rule.clone(),
                        expected: p.expected_case.clone(),
                        caught,
                        seconds: started.elapsed().as_secs_f64(),
                    });
                    if caught {
                        Ok(())
                    } else {
                        Err(Failed::from(
                            missed
                                .iter()
                                .map(|(case, outcome)| {
                                    format!(
                                        "{} is not caught by {case}: {} {outcome:?}",
                                        p.name,
                                        outcome.word()
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join("\n"),
                        ))
                    }
                },
            ));
            // The unchanged example passes the cases that catch the broken one.
            let p = program;
            trials.push(Trial::test(format!("control::{}", p.name), move || {
                for (case, outcome) in run(command(Path::new(EXAMPLE)), &p.must_fail())? {
                    if outcome != Outcome::Passed {
                        return Err(Failed::from(format!(
                            "the correct example plugin does not pass {case}: {outcome:?}"
                        )));
                    }
                }
                Ok(())
            }));
        }
        let started = Instant::now();
        let conclusion = libtest_mimic::run(&args, trials);
        print_table(&rows.lock().unwrap_or_else(|e| e.into_inner()), started);
        conclusion.exit()
    }

    fn print_table(rows: &[Row], started: Instant) {
        if rows.is_empty() {
            return;
        }
        let mut rows: Vec<&Row> = rows.iter().collect();
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
        let caught = table::print(
            "out-of-process broken plugins (selftest/broken-plugins, over the protocol):",
            &table,
        );
        println!(
            "caught {caught}/{} in {:.1}s",
            rows.len(),
            started.elapsed().as_secs_f64()
        );
    }
}
