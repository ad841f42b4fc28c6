//! The seams between the suite and what it checks: how plugins are made ([`PluginFactory`]),
//! where they store ([`Namespace`]), how faults are provoked ([`Fault`]), and how other
//! processes serving the same plugin are started ([`WorkerLauncher`], [`Worker`]).

use std::path::PathBuf;

use identity_cache_persistence::{CachePersistence, Error, Result};

/// One scratch storage slot: a cache name and a private directory.
///
/// - `dir` exists when [`PluginFactory::create`] is called, is empty at first, has mode
///   0700, and belongs to this namespace alone, except that the name cases put a second
///   name in it ([`Ctx::namespace_beside`](crate::Ctx::namespace_beside)). A plugin that stores in files keeps them
///   under `dir`; the security cases inspect everything below it. One case
///   (`security::dirs_private`) removes `dir` first: a plugin that keeps files there
///   creates it (mode 0700) on its first save, as it would create a missing cache
///   directory.
/// - `name` is a valid cache name, unique per run and process, so plugins with global
///   storage (a keyring) do not collide with other runs. Mostly ASCII letters, digits and
///   `-`; the name cases also use `.` and `_` (as in `msal.cache.nocae`) and names of
///   [`MAX_NAME_LEN`](identity_cache_persistence::MAX_NAME_LEN) bytes, and put two names
///   in one directory, as the SDKs do.
/// - Two plugins created for equal namespaces, in this process or in a worker process,
///   are two handles on the same slot and see each other's saves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    /// The cache name, as a user would pass it in the persistence options.
    pub name: String,
    /// The slot's private scratch directory.
    pub dir: PathBuf,
}

impl Namespace {
    /// A namespace with this name and directory; creates nothing.
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Namespace {
            name: name.into(),
            dir: dir.into(),
        }
    }
}

/// A fault the suite asks a factory to provoke in a namespace's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The storage cannot be reached: a save must fail with
    /// [`StorageUnavailable`](identity_cache_persistence::ErrorKind::StorageUnavailable).
    StorageUnavailable,
    /// The OS or store refuses access: a save must fail with
    /// [`AccessDenied`](identity_cache_persistence::ErrorKind::AccessDenied).
    AccessDenied,
    /// No space is left: a save must fail with
    /// [`StorageFull`](identity_cache_persistence::ErrorKind::StorageFull).
    DiskFull,
}

impl Fault {
    /// Every fault, in declaration order.
    pub const ALL: [Fault; 3] = [
        Fault::StorageUnavailable,
        Fault::AccessDenied,
        Fault::DiskFull,
    ];

    /// A stable snake_case name, used in case names and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::StorageUnavailable => "storage_unavailable",
            Fault::AccessDenied => "access_denied",
            Fault::DiskFull => "disk_full",
        }
    }
}

/// Makes plugins for namespaces: the one thing an implementer provides to be checked.
///
/// Object-safe, so the suite holds `&dyn PluginFactory`. Only [`label`](Self::label) and
/// [`create`](Self::create) are required; the hooks let the `input` and `faults` areas
/// provoke conditions from outside the plugin. A hook the factory does not provide answers
/// `Err` of kind [`NotSupported`](identity_cache_persistence::ErrorKind::NotSupported), and
/// the cases that need it are reported as skipped with that reason, never as passed.
pub trait PluginFactory: Send + Sync {
    /// A short name for reports, e.g. `"file"` or `"exec:python3 plugin.py"`.
    fn label(&self) -> String;

    /// Whether the handles of [`create`](Self::create) are the plugin itself, in this
    /// process (the default), rather than the suite's client of a plugin process. Only an
    /// in-process plugin has a `Debug` output of its own to check
    /// (`security::blob_not_in_debug`); a process's logs are its stderr, which
    /// `security::blob_not_in_logs` reads.
    fn in_process(&self) -> bool {
        true
    }

    /// A new handle on the slot named by `ns`.
    ///
    /// - Equal namespaces give handles on the same stored blob.
    /// - An invalid `ns.name` (empty, a path separator, `..`, NUL, too long) is refused
    ///   with [`InvalidName`](identity_cache_persistence::ErrorKind::InvalidName), as the
    ///   plugin's own constructor would refuse it.
    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>>;

    /// Removes whatever the suite stored in `ns` (called once a case is done with it).
    ///
    /// The default deletes the blob through a fresh handle; factories whose plugins keep
    /// storage outside `ns.dir` that `delete` leaves behind override it.
    fn cleanup(&self, ns: &Namespace) -> Result<()> {
        self.create(ns)?.delete().map(|_| ())
    }

    /// Damages the stored data of `ns` so that it cannot be read back as a blob (for a
    /// file: a directory or FIFO where the file was; for a keyring: undecodable bytes).
    /// A `load` must then fail with
    /// [`CorruptData`](identity_cache_persistence::ErrorKind::CorruptData).
    fn corrupt_stored_data(&self, ns: &Namespace) -> Result<()> {
        let _ = ns;
        Err(Error::not_supported(&self.label(), "corrupt_stored_data"))
    }

    /// Provokes `fault` in the storage of `ns` until [`clear_fault`](Self::clear_fault).
    ///
    /// The fault must be real (the OS or store refuses), not simulated inside the plugin:
    /// the cases check what the plugin makes of it and that nothing stored is lost.
    fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        let _ = ns;
        Err(Error::not_supported(
            &self.label(),
            &format!("inject_fault({})", fault.as_str()),
        ))
    }

    /// Undoes [`inject_fault`](Self::inject_fault), restoring the storage exactly as the
    /// plugin left it while the fault was in force (so that damage done then stays visible).
    fn clear_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        let _ = ns;
        Err(Error::not_supported(
            &self.label(),
            &format!("clear_fault({})", fault.as_str()),
        ))
    }
}

/// A plugin served by another OS process: a real second process for cross-process cases.
///
/// The process serves the same factory's plugin for the namespace it was launched for;
/// every [`CachePersistence`] call is forwarded to it (lock guards are held there).
pub trait Worker: CachePersistence {
    /// The worker's process id.
    fn pid(&self) -> u32;

    /// Kills the process with SIGKILL and reaps it. Afterwards every call fails.
    /// Killing a dead worker does nothing.
    fn kill(&mut self);

    /// [`save`](CachePersistence::save), calling `sent` the moment the whole request has
    /// been written to the process (which has then read all of it but what a pipe buffers)
    /// and only its work is left: the crash cases time their kills from there, so that
    /// neither the suite's encoding nor the transfer is part of the span they aim at.
    /// A worker that is no process has nothing to transfer: `sent` comes first.
    fn save_sent(&self, data: &[u8], sent: &mut dyn FnMut()) -> Result<()> {
        sent();
        self.save(data)
    }
}

/// Starts worker processes; present when the plugin can be served out of process (the
/// harness re-executes its own test binary; the CLI runs the plugin command again).
pub trait WorkerLauncher: Send + Sync {
    /// A new process serving a handle on `ns`.
    fn launch(&self, ns: &Namespace) -> Result<Box<dyn Worker>>;
}
