//! Running cases: probe the plugin once, then run each case on its own thread under a
//! watchdog, turning panics and hangs into failures. A run never stops at a failure.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use identity_cache_persistence::{Capabilities, Description};

use crate::{
    blob,
    case::Case,
    ctx::{Config, Ctx, Hung, create_private_dir, watchdog},
    expectations::Expectations,
    factory::{Namespace, PluginFactory, WorkerLauncher},
    failure::{Failure, Stop},
    registry,
    report::{CaseReport, Outcome, Report},
};

/// Everything a run needs: the plugin, optional workers, configuration, known gaps.
#[derive(Clone)]
pub struct Suite {
    factory: Arc<dyn PluginFactory>,
    launcher: Option<Arc<dyn WorkerLauncher>>,
    config: Arc<Config>,
    expectations: Arc<Expectations>,
    scratch: Arc<tempfile::TempDir>,
    probed: Result<Description, Failure>,
}

impl Suite {
    /// A suite for `factory`; probes the plugin's description once (through a handle on a
    /// scratch namespace) so cases can be selected by capability.
    pub fn new(factory: Arc<dyn PluginFactory>, config: Config) -> std::io::Result<Self> {
        let scratch = tempfile::Builder::new().prefix("conformance-").tempdir()?;
        let probed = probe(&*factory, scratch.path().join("probe"));
        Ok(Suite {
            factory,
            launcher: None,
            config: Arc::new(config),
            expectations: Arc::new(Expectations::none()),
            scratch: Arc::new(scratch),
            probed,
        })
    }

    /// Adds a worker launcher, enabling the multi-process cases.
    pub fn with_launcher(mut self, launcher: Arc<dyn WorkerLauncher>) -> Self {
        self.launcher = Some(launcher);
        self
    }

    /// Sets the known gaps.
    pub fn with_expectations(mut self, expectations: Expectations) -> Self {
        self.expectations = Arc::new(expectations);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The factory's label.
    pub fn label(&self) -> String {
        self.factory.label()
    }

    /// The declared capabilities, or what went wrong asking for them.
    pub fn capabilities(&self) -> Result<Capabilities, Failure> {
        self.probed
            .as_ref()
            .map(|d| d.capabilities)
            .map_err(Clone::clone)
    }

    /// Why `case` does not apply, if it does not (an unmet need).
    pub fn skip_reason(&self, case: &Case) -> Option<String> {
        let caps = self.capabilities().ok()?;
        registry::applicable(case, &caps, self.launcher.is_some()).err()
    }

    /// Runs one case to its outcome (skips, known gaps, watchdog and panics included).
    pub fn run_case(&self, case: &Case) -> CaseReport {
        let started = Instant::now();
        let outcome = match self.capabilities() {
            Err(failure) => Outcome::Failed(failure),
            Ok(caps) => match registry::applicable(case, &caps, self.launcher.is_some()) {
                Err(reason) => Outcome::Skipped(reason),
                Ok(()) => {
                    let verdict = self.execute(case, caps);
                    match (self.expectations.gap(case.name), verdict) {
                        (Some(reason), Ok(Verdict::Passed)) => Outcome::KnownGap {
                            reason: reason.to_string(),
                            failure: None,
                        },
                        (Some(reason), Err(failure)) => Outcome::KnownGap {
                            reason: reason.to_string(),
                            failure: Some(failure),
                        },
                        (_, Ok(Verdict::Skipped(reason))) => Outcome::Skipped(reason),
                        (None, Ok(Verdict::Passed)) => Outcome::Passed,
                        (None, Err(failure)) => Outcome::Failed(failure),
                    }
                }
            },
        };
        let outcome = match outcome {
            Outcome::Failed(mut f) => {
                f.rerun = self.config.rerun_for(case.name);
                Outcome::Failed(f)
            }
            Outcome::KnownGap {
                reason,
                failure: Some(mut f),
            } => {
                f.rerun = self.config.rerun_for(case.name);
                Outcome::KnownGap {
                    reason,
                    failure: Some(f),
                }
            }
            other => other,
        };
        CaseReport {
            name: case.name.to_string(),
            rule: case.rule.to_string(),
            outcome,
            duration: started.elapsed(),
        }
    }

    /// Runs every case of `cases` in order and collects the report.
    pub fn run(&self, cases: &[Case]) -> Report {
        let reports = cases.iter().map(|case| self.run_case(case)).collect();
        self.report(reports)
    }

    /// A report of already-run cases, with this suite's header fields.
    pub fn report(&self, cases: Vec<CaseReport>) -> Report {
        Report {
            plugin: self.factory.label(),
            description: match &self.probed {
                Ok(d) => format!("backend {}, at {}", d.backend, d.location),
                Err(f) => format!("could not be described: {}", f.actual),
            },
            seed: self.config.seed,
            property_cases: self.config.cases,
            thorough: self.config.thorough,
            cases,
        }
    }

    /// The longest a case may run before it is reported as hanging.
    fn case_limit(&self) -> Duration {
        if self.config.thorough {
            Duration::from_secs(1800)
        } else {
            Duration::from_secs(120)
        }
    }

    fn execute(&self, case: &Case, caps: Capabilities) -> Result<Verdict, Failure> {
        let ctx = Ctx::new(
            Arc::clone(&self.factory),
            self.launcher.clone(),
            Arc::clone(&self.config),
            (case.name, case.rule),
            caps,
            self.scratch.path().to_path_buf(),
        );
        let run = case.run;
        let limit = self.case_limit();
        let name = case.name;
        let outcome = watchdog(limit, move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let result = run(&ctx);
                let hang = ctx.hang();
                drop(ctx);
                (result, hang)
            }))
        });
        match outcome {
            Err(Hung) => Err(Failure::new(
                crate::failure::HANG_RULE,
                format!("{name} finishes within {limit:?}"),
                "still running: the plugin hangs (the case was abandoned)",
            )),
            Ok(Err(panic)) => Err(Failure::new(
                "no operation panics; failures are typed errors",
                "every call returns Ok or Err",
                format!("panic: {}", panic_message(&*panic)),
            )),
            // Whatever the case concluded, a plugin process that did not answer is a hang.
            Ok(Ok((_, Some(hang)))) => Err(Failure::new(
                crate::failure::HANG_RULE,
                format!("every request of {name} is answered within the client's timeout"),
                hang,
            )),
            Ok(Ok((Err(Stop::Skipped(reason)), None))) => Ok(Verdict::Skipped(reason)),
            Ok(Ok((Err(Stop::Failed(failure)), None))) => Err(failure),
            Ok(Ok((Ok(()), None))) => Ok(Verdict::Passed),
        }
    }
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("factory", &self.factory.label())
            .field("launcher", &self.launcher.is_some())
            .field("config", &self.config)
            .field("expectations", &self.expectations)
            .finish_non_exhaustive()
    }
}

enum Verdict {
    Passed,
    Skipped(String),
}

fn probe(factory: &dyn PluginFactory, dir: PathBuf) -> Result<Description, Failure> {
    let broken = |actual: String| {
        Failure::new(
            "the factory creates a plugin that describes itself",
            "a plugin for a scratch namespace",
            actual,
        )
    };
    create_private_dir(&dir)
        .map_err(|e| broken(format!("cannot create {}: {e}", dir.display())))?;
    let ns = Namespace::new(format!("conf-probe-{:x}", std::process::id()), dir);
    let plugin = factory
        .create(&ns)
        .map_err(|e| broken(blob::describe_error(&e)))?;
    Ok(plugin.describe())
}

/// The message of a panic payload, when it is text.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(not a string)".into()
    }
}
