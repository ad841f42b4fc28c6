//! The test harness for Rust implementers: one libtest-mimic trial per case.
//!
//! In `Cargo.toml`:
//!
//! ```toml
//! [[test]]
//! name = "conformance"
//! harness = false
//! ```
//!
//! and in `tests/conformance.rs`, one line naming a factory:
//!
//! ```ignore
//! conformance::harness!(|| my_crate::MyFactory::new());
//! ```
//!
//! Then `cargo test --test conformance` runs every case as its own test, filterable
//! (`cargo test --test conformance -- lock::`), skipped cases shown as ignored with their
//! reason. The same binary serves as the worker process for multi-process cases: it is
//! re-executed with `CONFORMANCE_WORKER=1` and then serves the factory over the protocol
//! instead of running tests.
//!
//! Settings come from the environment: `CONFORMANCE_SEED`, `CONFORMANCE_CASES`,
//! `CONFORMANCE_THOROUGH=1`, and `CONFORMANCE_EXPECTATIONS=<file>` for known gaps.

use std::sync::Arc;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::{
    expectations::Expectations,
    factory::{PluginFactory, WorkerLauncher},
    registry,
    report::Outcome,
    run::Suite,
    settings::EnvSettings,
};

/// Generates `fn main()` for a `harness = false` test target that checks the factory made
/// by the given closure (or function path).
#[macro_export]
macro_rules! harness {
    ($make:expr) => {
        fn main() {
            let make = $make;
            $crate::harness::main(env!("CARGO_PKG_NAME"), make())
        }
    };
}

/// The body of [`harness!`]: worker mode first, then the trials. Never returns.
/// `package` is the implementer's package, for the rerun command in failures.
pub fn main<F: PluginFactory + 'static>(package: &str, factory: F) -> ! {
    main_with(package, factory, Expectations::none())
}

/// [`main`] with known gaps: `expectations` apply unless `CONFORMANCE_EXPECTATIONS` names
/// a file, which then replaces them. For a target that judges a plugin with gaps on
/// record (a store this project did not write). Never returns.
pub fn main_with<F: PluginFactory + 'static>(
    package: &str,
    factory: F,
    expectations: Expectations,
) -> ! {
    // Worker mode must come before anything else: in a worker, stdout is the protocol.
    crate::protocol::serve_worker_if_requested(&factory);
    let launcher: Option<Arc<dyn WorkerLauncher>> = match crate::protocol::SelfExecLauncher::new() {
        Ok(l) => Some(Arc::new(l)),
        Err(e) => {
            eprintln!("conformance: no worker processes ({e}); multi-process cases are skipped");
            None
        }
    };
    run_trials_with(package, Arc::new(factory), launcher, expectations)
}

/// Runs every case against `factory` as libtest-mimic trials and exits with their verdict.
/// `package` names the test target's package in rerun commands.
pub fn run_trials(
    package: &str,
    factory: Arc<dyn PluginFactory>,
    launcher: Option<Arc<dyn WorkerLauncher>>,
) -> ! {
    run_trials_with(package, factory, launcher, Expectations::none())
}

/// [`run_trials`] with `expectations` as the known gaps unless `CONFORMANCE_EXPECTATIONS`
/// names a file.
pub fn run_trials_with(
    package: &str,
    factory: Arc<dyn PluginFactory>,
    launcher: Option<Arc<dyn WorkerLauncher>>,
    expectations: Expectations,
) -> ! {
    let args = Arguments::from_args();
    let settings = settings_or_exit();
    let expectations = match &settings.expectations {
        Some(path) => Expectations::load(path).unwrap_or_else(|e| exit_setup(&e)),
        None => expectations,
    };
    let suite = suite_with(
        factory,
        &settings,
        &format!("cargo test -p {package} --test {} --", test_target_name()),
    )
    .with_expectations(expectations);
    let suite = match launcher {
        Some(l) => suite.with_launcher(l),
        None => suite,
    };
    eprintln!(
        "conformance: checking {} with seed {} ({} property cases{})",
        suite.label(),
        suite.config().seed,
        suite.config().cases,
        if suite.config().thorough {
            ", thorough"
        } else {
            ""
        }
    );
    let trials = trials(&suite);
    let conclusion = libtest_mimic::run(&args, trials);
    // Drop the suite before exiting so its scratch directory is removed.
    drop(suite);
    conclusion.exit()
}

/// A suite configured from the environment (`CONFORMANCE_SEED`, `CONFORMANCE_CASES`,
/// `CONFORMANCE_THOROUGH`), for harnesses with a `main` of their own (one that starts a
/// server first, say). A failure's rerun hint is `command` followed by
/// `--exact <case>`, with the settings of this run in front, e.g. for `command`
/// `cargo test -p conformance --test redis --`:
/// `CONFORMANCE_SEED=7 CONFORMANCE_CASES=16 cargo test -p conformance --test redis -- --exact lock::excludes`.
///
/// Exits with status 2 when the suite's scratch directory cannot be made: there is
/// nothing to check then.
///
/// Exits with status 2 too when a setting is malformed (`CONFORMANCE_SEED=abc`).
pub fn suite_from_env(factory: Arc<dyn PluginFactory>, command: &str) -> Suite {
    suite_with(factory, &settings_or_exit(), command)
}

fn suite_with(factory: Arc<dyn PluginFactory>, settings: &EnvSettings, command: &str) -> Suite {
    let mut config = settings.config();
    config.rerun = format!(
        "CONFORMANCE_SEED={{seed}} CONFORMANCE_CASES={}{} {command} --exact {{case}}",
        config.cases,
        if config.thorough {
            " CONFORMANCE_THOROUGH=1"
        } else {
            ""
        },
    );
    match Suite::new(factory, config) {
        Ok(s) => s,
        Err(e) => exit_setup(&format!("cannot create a scratch directory: {e}")),
    }
}

/// The environment's settings; a malformed one ends the run as a setup error.
fn settings_or_exit() -> EnvSettings {
    EnvSettings::read().unwrap_or_else(|e| exit_setup(&e))
}

/// Ends the run with status 2, the status of a run that could not start.
fn exit_setup(message: &str) -> ! {
    eprintln!("conformance: {message}");
    std::process::exit(2)
}

/// One trial per case of the registry.
pub fn trials(suite: &Suite) -> Vec<Trial> {
    registry::all_cases()
        .into_iter()
        .map(|case| {
            let suite = suite.clone();
            let kind = case.area();
            Trial::ignorable_test(case.name, move || match suite.run_case(&case).outcome {
                Outcome::Passed => Ok(Completion::Completed),
                Outcome::Skipped(reason) => Ok(Completion::ignored_with(reason)),
                Outcome::Failed(failure) => Err(Failed::from(failure.to_string())),
                Outcome::KnownGap {
                    reason,
                    failure: Some(f),
                } => Ok(Completion::ignored_with(format!(
                    "known gap ({reason}), still failing: {}",
                    f.rule
                ))),
                Outcome::KnownGap {
                    reason,
                    failure: None,
                } => Ok(Completion::ignored_with(format!(
                    "known gap ({reason}) now passes: remove it from the expectations"
                ))),
            })
            .with_kind(kind)
        })
        .collect()
}

/// The test target's name, from the executable (`<name>-<hash>`), for rerun hints.
fn test_target_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
            _ => stem,
        })
        .unwrap_or_else(|| "conformance".into())
}
