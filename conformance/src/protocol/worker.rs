//! Worker processes: a plugin served out of process for multi-process cases, and the
//! launchers and factories that start plugin processes.
//!
//! Two kinds of process serve the protocol:
//! - **the current test binary again** ([`SelfExecLauncher`]): a Rust implementer's test
//!   binary is re-executed with [`WORKER_ENV`]`=1`; its `main` (the harness macro) calls
//!   [`serve_worker_if_requested`] first, which serves the implementer's factory on
//!   stdin/stdout and exits instead of running tests;
//! - **a command line** ([`ExecFactory`]): `exec:<command>`, run with `sh -c`, for plugins in
//!   any language.

use std::{
    collections::HashMap,
    ffi::OsString,
    io::{self, BufWriter},
    path::PathBuf,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use identity_cache_persistence::{CachePersistence, Error, ErrorKind, Result};

use crate::{
    dir_faults::{DirFaults, damage_files},
    factory::{Fault, Namespace, PluginFactory, Worker, WorkerLauncher},
};

use super::lock;
use super::{
    client::{ClientOptions, ProcessPlugin, WeakProcess},
    server::{ServerInfo, serve_with},
};

/// The environment variable that makes a test binary serve as a worker (`1`).
pub const WORKER_ENV: &str = "CONFORMANCE_WORKER";

/// The process id of the suite that started a worker, set by [`SelfExecLauncher`]: the
/// worker exits when its parent is no longer that process.
pub const PARENT_ENV: &str = "CONFORMANCE_WORKER_PARENT";

/// The prefix of a plugin given as a command line: `exec:<command>`.
pub const EXEC_PREFIX: &str = "exec:";

/// True when this process was started as a worker ([`WORKER_ENV`] set, not empty, not `0`).
pub fn is_worker() -> bool {
    std::env::var_os(WORKER_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// In a worker process: serves `factory` on stdin/stdout until `shutdown` or end of input,
/// then exits the process (status 0, or 1 when stdin/stdout failed). Otherwise returns at
/// once.
///
/// Call it first thing in `main` of a test binary that the suite may re-execute, before
/// anything writes to stdout: stdout belongs to the protocol in a worker.
pub fn serve_worker_if_requested(factory: &dyn PluginFactory) {
    if !is_worker() {
        return;
    }
    #[cfg(unix)]
    exit_when_orphaned();
    let code = match serve_worker(factory) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("conformance worker: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// Ends this worker once the process that started it is gone.
///
/// Workers run in process groups of their own (so that a case can kill one), so killing
/// the suite's process group, as a test runner's timeout or Ctrl-C does, misses them. A
/// worker busy inside the plugin (a lock that never gives up, a loop that never ends)
/// never reads the end of its input, and would otherwise run on after the suite.
#[cfg(unix)]
fn exit_when_orphaned() {
    /// How often the parent is looked for: a leftover worker costs at most this long.
    const EVERY: std::time::Duration = std::time::Duration::from_millis(250);
    // The launcher names itself: a parent that died before this line ran would otherwise
    // be taken for init or a subreaper, and never missed.
    let parent = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(std::os::unix::process::parent_id);
    // Without the thread the worker only loses this safety net: not worth failing for.
    let _ = std::thread::Builder::new()
        .name("conformance-orphan-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EVERY);
                if std::os::unix::process::parent_id() != parent {
                    eprintln!("conformance worker: the suite that started it is gone; exiting");
                    std::process::exit(1);
                }
            }
        });
}

/// Serves `factory` on this process's stdin/stdout (the body of a worker).
pub fn serve_worker(factory: &dyn PluginFactory) -> io::Result<()> {
    let stdin = io::stdin().lock();
    // Buffered: `serve` flushes after each answer, and large answers go out in big writes.
    let stdout = BufWriter::new(io::stdout());
    serve_with(
        ServerInfo::new(factory.label(), "unknown"),
        |ns: &Namespace| factory.create(ns),
        stdin,
        stdout,
    )
}

/// Starts workers by re-executing the current executable with [`WORKER_ENV`]`=1`.
#[derive(Debug, Clone)]
pub struct SelfExecLauncher {
    exe: PathBuf,
    env: Vec<(OsString, OsString)>,
    options: ClientOptions,
}

impl SelfExecLauncher {
    /// A launcher for `std::env::current_exe()`.
    pub fn new() -> Result<Self> {
        let exe = std::env::current_exe().map_err(|e| {
            Error::with_source(
                ErrorKind::Other,
                "cannot find the current executable to start workers",
                e,
            )
        })?;
        Ok(SelfExecLauncher {
            exe,
            env: Vec::new(),
            options: ClientOptions::default(),
        })
    }

    /// Also sets `key=value` in workers, e.g. to tell a binary with several factories which
    /// one to serve.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Uses `options` for the workers' connections.
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// Starts one worker on `ns`, as the concrete type.
    pub fn spawn(&self, ns: &Namespace) -> Result<ProcessPlugin> {
        let mut command = Command::new(&self.exe);
        command
            .env(WORKER_ENV, "1")
            .env(PARENT_ENV, std::process::id().to_string())
            .envs(self.env.iter().cloned());
        ProcessPlugin::spawn(command, ns, self.options.clone())
    }
}

impl WorkerLauncher for SelfExecLauncher {
    fn launch(&self, ns: &Namespace) -> Result<Box<dyn Worker>> {
        Ok(Box::new(self.spawn(ns)?))
    }
}

/// A plugin given as a command line (`exec:<command>`), run with `sh -c <command>`; it is
/// both the factory and the worker launcher.
///
/// - Every worker is a new process.
/// - The handles of [`create`](PluginFactory::create) live in one process per case when
///   the plugin declares `handles` in its `hello` answer: the first starts it, the others
///   are opened in it while it runs. A case is told by the parent of the namespace
///   directory, which the suite makes for each case (see [`Ctx::namespace`](crate::Ctx::namespace)).
///   So the handles of one case share a process, as the values of a Rust plugin share the
///   suite's process, and the in-process rules (exclusion between handles, names isolated
///   in one process, no stale state in a handle) are checked as they are for Rust plugins.
///   Without the declaration every handle is a process of its own.
///
/// A plugin that declares `storage_under_dir` in its `hello` answer gets the fault and
/// corruption hooks from outside: [`DirFaults`] and [`damage_files`] on the namespace
/// directory. Without the declaration those hooks answer `NotSupported`, and their cases
/// are skipped saying so.
#[derive(Debug, Clone)]
pub struct ExecFactory {
    command: String,
    options: ClientOptions,
    black_box: Arc<BlackBox>,
    /// The process serving the handles of each case, by the parent of its namespace
    /// directories (see above).
    homes: Arc<Mutex<HashMap<PathBuf, WeakProcess>>>,
}

/// The hooks of plugins whose storage is under the namespace directory.
#[derive(Debug, Default)]
struct BlackBox {
    /// Set once a `hello` answer declared `storage_under_dir`.
    declared: AtomicBool,
    faults: DirFaults,
}

impl ExecFactory {
    /// A factory running `command` (without the `exec:` prefix).
    pub fn new(command: impl Into<String>) -> Self {
        ExecFactory {
            command: command.into(),
            options: ClientOptions::default(),
            black_box: Arc::default(),
            homes: Arc::default(),
        }
    }

    /// Parses a plugin spec `exec:<command>`; `None` when `spec` does not start with
    /// `exec:` or names no command.
    pub fn from_spec(spec: &str) -> Option<Self> {
        let command = spec.strip_prefix(EXEC_PREFIX)?.trim();
        (!command.is_empty()).then(|| ExecFactory::new(command))
    }

    /// Uses `options` for the connections.
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// The command line.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Starts one plugin process on `ns`, as the concrete type.
    pub fn spawn(&self, ns: &Namespace) -> Result<ProcessPlugin> {
        let plugin = ProcessPlugin::spawn_shell(&self.command, ns, self.options.clone())?;
        if plugin.hello().storage_under_dir {
            self.black_box.declared.store(true, Ordering::Relaxed);
        }
        Ok(plugin)
    }

    /// The directory hooks, when the plugin declared its storage there.
    fn black_box(&self, hook: &str) -> Result<&BlackBox> {
        if self.black_box.declared.load(Ordering::Relaxed) {
            Ok(&self.black_box)
        } else {
            Err(Error::not_supported(
                &self.label(),
                &format!(
                    "{hook} (the plugin does not declare `storage_under_dir` in its hello answer, so the suite cannot provoke it from outside)"
                ),
            ))
        }
    }
}

impl PluginFactory for ExecFactory {
    fn label(&self) -> String {
        format!("{EXEC_PREFIX}{}", self.command)
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        let homes = || lock(&self.homes);
        let case = ns.dir.parent().unwrap_or(&ns.dir).to_path_buf();
        // Not opened under the lock: cases run in parallel, and each waits for its own.
        let home = homes().get(&case).cloned();
        if let Some(opened) = home.and_then(|home| home.open(ns)) {
            return Ok(Box::new(opened?));
        }
        let plugin = self.spawn(ns)?;
        if plugin.hello().handles {
            let mut homes = homes();
            // Ended processes leave entries behind; drop them as new ones come.
            homes.retain(|_, home| home.is_running());
            homes.insert(case, plugin.process());
        }
        Ok(Box::new(plugin))
    }

    fn in_process(&self) -> bool {
        false
    }

    fn cleanup(&self, ns: &Namespace) -> Result<()> {
        self.black_box.faults.clear_any(&ns.dir)?;
        self.create(ns)?.delete().map(|_| ())
    }

    fn corrupt_stored_data(&self, ns: &Namespace) -> Result<()> {
        self.black_box("corrupt_stored_data")?;
        match damage_files(&ns.dir)? {
            0 => Err(Error::new(
                ErrorKind::Other,
                format!(
                    "the plugin declares `storage_under_dir`, but after a save nothing was stored under {}",
                    ns.dir.display()
                ),
            )),
            _ => Ok(()),
        }
    }

    fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.black_box(&format!("inject_fault({})", fault.as_str()))?
            .faults
            .inject(&ns.dir, fault)
    }

    fn clear_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.black_box(&format!("clear_fault({})", fault.as_str()))?
            .faults
            .clear(&ns.dir, fault)
    }
}

impl WorkerLauncher for ExecFactory {
    fn launch(&self, ns: &Namespace) -> Result<Box<dyn Worker>> {
        Ok(Box::new(self.spawn(ns)?))
    }
}
