//! What a running case gets: the factory, fresh namespaces, the configuration, workers.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    thread,
    time::Duration,
};

use identity_cache_persistence::{CachePersistence, Capabilities};

use crate::{
    blob,
    factory::{Namespace, PluginFactory, Worker, WorkerLauncher},
    failure::{Failure, Stop},
    hang::{HangLog, Watched},
};

/// How a run is configured; the same for every case of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Property-test cases for the `model` area (and rounds of randomized checks).
    pub cases: u32,
    /// The seed every randomized case derives its generator from; print it to reproduce.
    pub seed: u64,
    /// Release-gating mode: many more property cases, longer races, more repetitions.
    pub thorough: bool,
    /// How to rerun one case: `{case}` and `{seed}` are replaced. The harness and the CLI
    /// each set their own command line.
    pub rerun: String,
}

impl Config {
    /// Property cases at default settings; a run must stay well under a minute, also for
    /// plugins served by slow-starting processes (each sequence starts fresh handles), so
    /// there are few sequences, and long ones (see `cases::model::MAX_STEPS`).
    pub const DEFAULT_CASES: u32 = 16;
    /// Property cases with `thorough`.
    pub const THOROUGH_CASES: u32 = 1024;

    /// A default configuration with a fresh random seed.
    pub fn new() -> Self {
        Config {
            cases: Self::DEFAULT_CASES,
            seed: fastrand::u64(..),
            thorough: false,
            rerun: "conformance --filter '{case}' --seed {seed}".into(),
        }
    }

    /// Sets `thorough`, and raises `cases` to [`Self::THOROUGH_CASES`] when turning it on.
    pub fn thorough(mut self, yes: bool) -> Self {
        self.thorough = yes;
        if yes {
            self.cases = self.cases.max(Self::THOROUGH_CASES);
        }
        self
    }

    /// The rerun command for `case`.
    pub fn rerun_for(&self, case: &str) -> String {
        self.rerun
            .replace("{case}", case)
            .replace("{seed}", &self.seed.to_string())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

/// The context of one case: everything a case may use, and cleanup when it is dropped.
///
/// Namespaces handed out by [`Ctx::namespace`] are cleaned up (through the factory) and
/// their directories removed when the context is dropped.
pub struct Ctx {
    factory: Arc<dyn PluginFactory>,
    launcher: Option<Arc<dyn WorkerLauncher>>,
    config: Arc<Config>,
    /// The running case's name and rule (not the `Case`, whose check takes a `Ctx`).
    case: &'static str,
    rule: &'static str,
    caps: Capabilities,
    /// This run of the case's own directory, `<suite scratch>/<run tag>`: every namespace
    /// of the case is made in it, so a factory can tell the namespaces of one case by
    /// their parent (see [`namespace`](Self::namespace)).
    scratch: PathBuf,
    run_tag: String,
    counter: AtomicU32,
    namespaces: Mutex<Vec<Namespace>>,
    /// Hangs of the plugin processes behind the handles of [`plugin`](Self::plugin).
    hangs: HangLog,
}

impl Ctx {
    /// A context for the case named `case`, checking `rule`; its namespaces live in a
    /// directory of its own under `scratch`, removed when the context is dropped.
    pub fn new(
        factory: Arc<dyn PluginFactory>,
        launcher: Option<Arc<dyn WorkerLauncher>>,
        config: Arc<Config>,
        (case, rule): (&'static str, &'static str),
        caps: Capabilities,
        scratch: PathBuf,
    ) -> Self {
        // Names must not collide with other runs or processes (a keyring is global).
        let run_tag = format!(
            "{:x}{:06x}",
            std::process::id(),
            fastrand::u32(..0x100_0000)
        );
        Ctx {
            factory,
            launcher,
            config,
            case,
            rule,
            caps,
            scratch: scratch.join(&run_tag),
            run_tag,
            counter: AtomicU32::new(0),
            namespaces: Mutex::new(Vec::new()),
            hangs: HangLog::default(),
        }
    }

    /// The factory under test.
    pub fn factory(&self) -> &dyn PluginFactory {
        &*self.factory
    }

    /// The worker launcher, when the run has one.
    pub fn launcher(&self) -> Option<&dyn WorkerLauncher> {
        self.launcher.as_deref()
    }

    /// The run's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The name of the case being run.
    pub fn case_name(&self) -> &'static str {
        self.case
    }

    /// The capabilities the plugin declared when the run started.
    pub fn caps(&self) -> &Capabilities {
        &self.caps
    }

    /// `want` bytes, or the plugin's declared `max_size` if that is smaller: cases that
    /// need big blobs for races use the biggest the plugin accepts.
    pub fn size_up_to(&self, want: usize) -> usize {
        self.caps.max_size.map_or(want, |max| max.min(want))
    }

    /// True in release-gating mode.
    pub fn thorough(&self) -> bool {
        self.config.thorough
    }

    /// A generator seeded from the run seed and the case name: reruns with the same seed
    /// replay the same choices, and different cases do not share a stream.
    pub fn rng(&self) -> fastrand::Rng {
        fastrand::Rng::with_seed(self.config.seed ^ blob::fnv64(self.case.as_bytes()))
    }

    /// A failure of this case's rule.
    pub fn fail(&self, expected: impl Into<String>, actual: impl Into<String>) -> Stop {
        Stop::Failed(Failure::new(self.rule, expected, actual))
    }

    /// A fresh, empty namespace with its own 0700 directory.
    ///
    /// The directories of one case's namespaces share a parent that no other case uses:
    /// a factory that serves plugins out of process (`ExecFactory`) serves the handles of
    /// one case from one process, as a Rust plugin's handles share the suite's.
    pub fn namespace(&self) -> Result<Namespace, Stop> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("conf-{}-{n}", self.run_tag);
        let dir = self.scratch.join(&name);
        create_private_dir(&dir).map_err(|e| {
            Stop::Failed(Failure::new(
                "the suite can create its scratch directories",
                format!("a new directory {}", dir.display()),
                format!("error: {e}"),
            ))
        })?;
        let ns = Namespace::new(name, dir);
        self.lock_namespaces().push(ns.clone());
        Ok(ns)
    }

    /// A namespace named `<base name><suffix>` in `base`'s directory, cleaned up like
    /// [`namespace`](Self::namespace)'s: for cases about several caches in one directory,
    /// as the SDKs keep `msal.cache` and `msal.cache.nocae` side by side.
    pub fn namespace_beside(&self, base: &Namespace, suffix: &str) -> Namespace {
        let ns = Namespace::new(format!("{}{suffix}", base.name), base.dir.clone());
        self.lock_namespaces().push(ns.clone());
        ns
    }

    /// Marks `ns` as already cleaned by the case (its blob deleted through a handle), so
    /// the context does not ask the factory again; its directory is still removed. Spares
    /// a plugin process per namespace for plugins served out of process.
    pub fn cleaned(&self, ns: &Namespace) {
        self.lock_namespaces().retain(|n| n != ns);
        let _ = fs::remove_dir_all(&ns.dir);
    }

    /// A new handle on `ns` from the factory. A request it makes of a plugin process that
    /// gets no answer in time is recorded as a hang ([`crate::failure::HANG_RULE`]).
    pub fn plugin(&self, ns: &Namespace) -> Result<Arc<dyn CachePersistence>, Stop> {
        let watched = |inner| -> Arc<dyn CachePersistence> {
            Arc::new(Watched {
                inner,
                log: self.hangs.clone(),
            })
        };
        self.factory.create(ns).map(watched).map_err(|e| {
            Stop::Failed(Failure::new(
                "the factory creates a plugin for a valid namespace",
                format!("a plugin for namespace {}", ns.name),
                blob::describe_error(&e),
            ))
        })
    }

    /// The first hang of a plugin process seen by this case's handles: what the request
    /// that got no answer said.
    pub(crate) fn hang(&self) -> Option<String> {
        self.hangs.first()
    }

    /// A fresh namespace and one handle on it.
    pub fn fresh(&self) -> Result<(Namespace, Arc<dyn CachePersistence>), Stop> {
        let ns = self.namespace()?;
        let plugin = self.plugin(&ns)?;
        Ok((ns, plugin))
    }

    /// A worker process serving a handle on `ns`. Cases that call this declare
    /// [`Need::Workers`](crate::Need::Workers).
    pub fn worker(&self, ns: &Namespace) -> Result<Box<dyn Worker>, Stop> {
        let launcher = self.launcher.as_deref().ok_or_else(|| {
            Stop::Failed(Failure::new(
                "cases needing workers run only with a launcher",
                "a worker launcher",
                "none (this is a bug in the suite's registry)",
            ))
        })?;
        launcher.launch(ns).map_err(|e| {
            Stop::Failed(Failure::new(
                "a worker process serving the plugin can be started",
                format!("a worker for namespace {}", ns.name),
                blob::describe_error(&e),
            ))
        })
    }

    /// `result` as a value, or a failure saying `what` should have succeeded.
    pub fn ok<T>(
        &self,
        what: &str,
        result: identity_cache_persistence::Result<T>,
    ) -> Result<T, Stop> {
        result.map_err(|e| self.fail(format!("{what} succeeds"), blob::describe_error(&e)))
    }

    /// Runs `f` on its own thread and waits at most `limit`, so that a plugin which hangs
    /// is reported as hanging instead of stopping the run. A hung thread is left behind
    /// (threads cannot be killed); the process exits at the end of the run anyway.
    pub fn within<T: Send + 'static>(
        &self,
        limit: Duration,
        what: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Stop> {
        watchdog(limit, f).map_err(|Hung| {
            Stop::Failed(Failure::new(
                crate::failure::HANG_RULE,
                format!("{what} returns within {limit:?}"),
                format!("still running after {limit:?}: the plugin hangs"),
            ))
        })
    }

    fn lock_namespaces(&self) -> std::sync::MutexGuard<'_, Vec<Namespace>> {
        // A case that panicked while holding the list cannot leave it inconsistent.
        self.namespaces.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let namespaces = std::mem::take(&mut *self.lock_namespaces());
        // All at once: for plugins served out of process each cleanup starts a process.
        // Cleanup failures are logged, not reported: the case's verdict is already in, and
        // a plugin that cannot delete is caught by the contract cases. A cleanup that hangs
        // is abandoned after the limit rather than hanging the run.
        let limit = Duration::from_secs(10);
        let pending: Vec<_> = namespaces
            .into_iter()
            .map(|ns| {
                let (tx, rx) = std::sync::mpsc::channel();
                let factory = Arc::clone(&self.factory);
                let target = ns.clone();
                thread::spawn(move || {
                    let _ = tx.send(factory.cleanup(&target));
                });
                (ns, rx)
            })
            .collect();
        for (ns, rx) in pending {
            if let Ok(Err(e)) = rx.recv_timeout(limit) {
                tracing::debug!(namespace = %ns.name, error = %e, "cleanup failed");
            }
            let _ = fs::remove_dir_all(&ns.dir);
        }
        let _ = fs::remove_dir_all(&self.scratch);
    }
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("factory", &self.factory.label())
            .field("case", &self.case)
            .field("config", &self.config)
            .field("caps", &self.caps)
            .field("scratch", &self.scratch)
            .finish_non_exhaustive()
    }
}

/// `f` did not finish within the watchdog's limit (it is left running on its thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hung;

/// Runs `f` on a new thread; `Err(Hung)` when it has not finished within `limit`.
///
/// A panic in `f` is resumed on the caller's thread, so it is reported where it belongs.
pub fn watchdog<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Hung> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => Err(Hung),
    }
}

/// Creates `dir` with mode 0700 (no parents beyond those that exist are expected).
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    // The umask may have narrowed nothing but could not widen; set it exactly.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
