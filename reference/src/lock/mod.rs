//! The cross-process lock on `<cache path>.lockfile`, shared with the MSAL extensions of
//! the JS, Python and .NET SDKs.
//!
//! # Protocol
//!
//! To acquire, a process
//! 1. takes the in-process slot of the path, so threads and several [`FileLock`] values of
//!    one process queue first come first served (`local`);
//! 2. creates the lock file with `O_CREAT | O_EXCL`, mode 0600 — this is what excludes and
//!    is excluded by MSAL Node (`open(path, "wx+")`) and both Python `msal-extensions`
//!    variants (`open(path, "x")`);
//! 3. takes an exclusive OS lock on it ([`File::try_lock`]: `flock` on Unix, `LockFileEx`
//!    on Windows) — this is what excludes and is excluded by Python's portalocker variant,
//!    which after 5 s of failed creates opens the existing file and waits for its OS lock,
//!    and by .NET, which opens the file whatever exists and holds its OS lock. If that
//!    lock is busy right after our create, such a process got the file first: it is left
//!    alone (not unlinked), and we go back to waiting;
//! 4. writes `"<pid> <executable>"`, the format of Python `msal-extensions`.
//!
//! To release, it unlinks the path if the path still names the file it holds (never
//! someone else's lock file), then closes the file, which drops the OS lock.
//!
//! While the file exists, a waiter polls every 50 µs to 1 ms (`wake`) rather than the
//! 50–250 ms of the other SDKs, so a release is noticed within about a millisecond. Each
//! poll also probes the existing file (`stale`): a file whose holder is dead is removed
//! and the lock taken, without ever letting two live holders in.
//! Waiters announce themselves so that a process releasing and re-acquiring in a loop
//! gives them a turn (`local::Fairness`).
//!
//! # What the other SDKs can still break
//!
//! Their own protocols have races this crate cannot close for them: Python's portalocker
//! variant, after waiting 5 s, takes the OS lock of a file that may already have been
//! unlinked and later removes whatever file the path then names; .NET on Unix locks
//! whatever file it opened, possibly one unlinked since. Our holders finish quickly, well
//! within those 5 s, so these paths are only reached when a holder really hangs.
//!
//! # Windows
//!
//! Only std is used. Our lock files are opened with `FILE_FLAG_DELETE_ON_CLOSE`, as .NET
//! does, so the file disappears when its holder closes it or dies; release is the close.
//! Pid liveness is not available, so a file with a parseable pid and no OS lock (an MSAL
//! Node or Python `filelock` holder, or one that died) counts as held until its holder
//! removes it; a file without a pid is removed after [`GRACE`] as on Unix. Waiters do not
//! announce themselves there (the OS lock is mandatory and forbids the append).

pub mod break_stale;
mod file_id;
pub mod holder;
mod local;
mod stale;
mod wake;

use std::{
    fmt,
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

pub use holder::Liveness;
pub use stale::{GRACE, Holder};

use crate::{
    error::{Error, ErrorKind, Result},
    persistence::HeldLock,
};
use file_id::same_file;
use local::LocalGuard;
use stale::Probe;
use wake::{POLL_MAX, Pause};

/// A lock file shared with the MSAL extensions of the other SDKs.
///
/// Cheap to create and clone; it touches nothing until [`acquire`](FileLock::acquire).
/// All `FileLock` values of one path exclude each other, in one process and across
/// processes; see the [module documentation](self) for the protocol.
#[derive(Debug, Clone)]
pub struct FileLock {
    path: PathBuf,
    /// The in-process registry key, computed on first use (the directory may not exist
    /// before).
    key: OnceLock<PathBuf>,
}

/// What is at a lock path now, as [`FileLock::inspect`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// No lock file.
    Free,
    /// A live holder.
    Held(Holder),
    /// A lock file nobody holds any more, and why; the next [`FileLock::acquire`] removes
    /// it.
    Stale(Holder, &'static str),
}

impl FileLock {
    /// The lock at `path` (conventionally `<cache path>.lockfile`). Touches nothing.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileLock {
            path: path.into(),
            key: OnceLock::new(),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the lock, waiting at most `wait`.
    ///
    /// - Free: returns at once with the lock file created, OS-locked and holding
    ///   `"<pid> <executable>"`.
    /// - Held by another thread of this process, through this or another `FileLock` of
    ///   the same path: waits its turn; threads are served in arrival order.
    /// - Held by another process (this crate or any MSAL SDK): waits, and takes the lock
    ///   within about a millisecond after the holder releases it.
    /// - Left behind by a holder that died (its pid no longer runs, or now names a later
    ///   process, or the file names no holder and is older than [`GRACE`]): the file is
    ///   removed, with a warning logged, and the lock taken — within a poll interval of the
    ///   holder's death, or of the grace period for a holder that died before writing
    ///   its pid.
    /// - `wait` runs out: `Err` of kind [`LockTimeout`](ErrorKind::LockTimeout) naming
    ///   the lock file and, when known, the holder's pid and whether it runs.
    /// - The directory does not exist, is not writable, or the lock path is not a regular
    ///   file: `Err` of the kind of the OS error (see [`Error::io`]), without waiting.
    pub fn acquire(&self, wait: Duration) -> Result<FileLockGuard> {
        let start = Instant::now();
        let deadline = start
            .checked_add(wait)
            .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 3600));
        let Some(local) = local::acquire(self.key(), deadline) else {
            return Err(self.timeout(wait, Seen::ThisProcess));
        };
        local.yield_if_owed(deadline, || std::fs::symlink_metadata(&self.path).is_ok());
        let mut pause = Pause::new();
        let mut waited = false;
        let mut retried_late = false;
        let mut seen = Seen::Nothing;
        loop {
            match create_new(&self.path) {
                Ok(file) => {
                    if let Some((file, written_len)) = self.take_created(file, deadline)? {
                        local.on_acquired(waited);
                        return Ok(FileLockGuard {
                            path: self.path.clone(),
                            file: Some(file),
                            written_len,
                            local: Some(local),
                        });
                    }
                    waited = true;
                    seen = Seen::LostCreated;
                }
                Err(e) if is_taken(&e) => {
                    waited = true;
                    match stale::probe(&self.path, true, true)
                        .map_err(|e| Error::io("inspect lock file", &self.path, e))?
                    {
                        Probe::Vanished | Probe::Removed(_) => {
                            // Gone: create again at once. Past the deadline only once, so
                            // that a zero wait still takes a lock whose stale file it just
                            // removed.
                            if Instant::now() < deadline || !retried_late {
                                retried_late |= Instant::now() >= deadline;
                                pause.reset();
                                continue;
                            }
                        }
                        Probe::Busy(holder) | Probe::Stale(holder, _) => {
                            seen = Seen::Holder(holder);
                        }
                    }
                }
                Err(e) => return Err(Error::io("create lock file", &self.path, e)),
            }
            if Instant::now() >= deadline {
                return Err(self.timeout(wait, seen));
            }
            pause.wait(deadline);
        }
    }

    /// What is at the lock path now: nothing, a live holder, or a stale file. Removes
    /// nothing.
    ///
    /// Probing takes the file's OS lock for a moment when it is free (that is how a live
    /// holder that takes OS locks is told apart); an acquirer that creates the file in
    /// that moment waits for it, as it waits for any prober.
    pub fn inspect(&self) -> Result<LockState> {
        let probe = stale::probe(&self.path, false, false)
            .map_err(|e| Error::io("inspect lock file", &self.path, e))?;
        Ok(match probe {
            Probe::Vanished => LockState::Free,
            Probe::Busy(holder) => LockState::Held(holder),
            Probe::Stale(holder, reason) => LockState::Stale(holder, reason),
            // Not produced without `remove`; mapped for completeness.
            Probe::Removed(holder) => LockState::Stale(holder, "removed"),
        })
    }

    fn key(&self) -> &Path {
        self.key.get_or_init(|| local::key_for(&self.path))
    }

    /// Finishes an acquire after our exclusive create: takes the OS lock and writes our
    /// pid. `None` when another process holds the file's OS lock (portalocker or .NET
    /// got it first; it removes the file when done) or the path stopped naming the file.
    fn take_created(&self, file: File, deadline: Instant) -> Result<Option<(File, u64)>> {
        let mut pause = Duration::from_micros(10);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    // A prober holds it for microseconds; the others hold it until done.
                    if !self.names(&file)? || Instant::now() >= deadline {
                        return Ok(None);
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(POLL_MAX);
                }
                // No OS locks on this file system: the pid alone marks the holder.
                Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                    break;
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    let _ = self.unlink_if_ours(&file);
                    return Err(Error::io("lock", &self.path, e));
                }
            }
        }
        // A stall longer than GRACE between create and lock lets a prober remove our
        // empty file as stale; then the lock is not ours.
        if !self.names(&file)? {
            return Ok(None);
        }
        let content = lock_file_content();
        if let Err(e) = (&file).write_all(content.as_bytes()) {
            let _ = self.unlink_if_ours(&file);
            return Err(Error::io("write lock file", &self.path, e));
        }
        Ok(Some((file, content.len() as u64)))
    }

    fn names(&self, file: &File) -> Result<bool> {
        same_file(file, &self.path).map_err(|e| Error::io("inspect lock file", &self.path, e))
    }

    /// Removes the path if it names `file`. On Windows the file is deleted on close.
    fn unlink_if_ours(&self, file: &File) -> io::Result<()> {
        unlink_if_ours(&self.path, file)
    }

    fn timeout(&self, wait: Duration, seen: Seen) -> Error {
        Error::new(
            ErrorKind::LockTimeout,
            format!(
                "timed out after {wait:?} waiting for the lock file {}: {seen}",
                self.path.display()
            ),
        )
    }
}

/// A held [`FileLock`]. Released by [`HeldLock::release`] or on drop.
#[derive(Debug)]
pub struct FileLockGuard {
    path: PathBuf,
    file: Option<File>,
    /// The length of what we wrote; a longer file means a waiter announced itself.
    written_len: u64,
    local: Option<LocalGuard>,
}

impl FileLockGuard {
    /// The lock file held.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn release_now(&mut self) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let announced = cfg!(unix)
            && file
                .metadata()
                .is_ok_and(|meta| meta.len() > self.written_len);
        let unlinked = unlink_if_ours(&self.path, &file);
        // Closing drops the OS lock; only then may the next thread of this process go.
        drop(file);
        if let Some(local) = self.local.take() {
            local.on_released(announced);
        }
        unlinked.map_err(|e| Error::io("remove lock file", &self.path, e))
    }
}

impl HeldLock for FileLockGuard {
    fn release(mut self: Box<Self>) -> Result<()> {
        self.release_now()
    }
}

impl Drop for FileLockGuard {
    fn drop(&mut self) {
        if let Err(err) = self.release_now() {
            tracing::warn!(error = %err, "releasing the cache lock failed");
        }
    }
}

/// What a waiter last saw, for the timeout message.
enum Seen {
    Nothing,
    ThisProcess,
    LostCreated,
    Holder(Holder),
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Nothing => f.write_str("its holder is unknown"),
            Seen::ThisProcess => f.write_str("another thread or handle of this process holds it"),
            Seen::LostCreated => f.write_str(
                "another process took the OS lock of the file right after we created it",
            ),
            Seen::Holder(holder) => match (holder.pid, holder.liveness, holder.os_locked) {
                (Some(pid), _, true) => {
                    write!(f, "held by pid {pid} (alive: it holds the OS lock)")
                }
                (None, _, true) => f.write_str(
                    "held by a process that holds its OS lock and has not written its pid",
                ),
                (Some(pid), Some(liveness), false) => write!(f, "held by pid {pid} ({liveness})"),
                (Some(pid), None, false) => write!(f, "held by pid {pid}"),
                (None, _, false) => write!(
                    f,
                    "the file names no holder yet (it counts as stale once older than {GRACE:?})"
                ),
            },
        }
    }
}

/// The lock file exists (Windows: or is being deleted, which refuses opens until its last
/// handle closes, as MSAL Node's `EPERM` case).
fn is_taken(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AlreadyExists
        || (cfg!(windows) && e.kind() == io::ErrorKind::PermissionDenied)
}

/// Creates the lock file exclusively, owner-only.
fn create_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        const GENERIC_READ: u32 = 0x8000_0000;
        const GENERIC_WRITE: u32 = 0x4000_0000;
        const DELETE: u32 = 0x0001_0000;
        const FILE_FLAG_DELETE_ON_CLOSE: u32 = 0x0400_0000;
        options
            .access_mode(GENERIC_READ | GENERIC_WRITE | DELETE)
            .custom_flags(FILE_FLAG_DELETE_ON_CLOSE);
    }
    options.open(path)
}

#[cfg(not(windows))]
fn unlink_if_ours(path: &Path, file: &File) -> io::Result<()> {
    if !same_file(file, path)? {
        return Ok(());
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(windows)]
fn unlink_if_ours(_path: &Path, _file: &File) -> io::Result<()> {
    // FILE_FLAG_DELETE_ON_CLOSE deletes exactly the file we hold when it is closed.
    Ok(())
}

/// `"<pid> <executable>"`, the format of Python `msal-extensions`, so its users can tell
/// who holds the lock.
fn lock_file_content() -> String {
    static EXE: OnceLock<String> = OnceLock::new();
    let exe = EXE.get_or_init(|| {
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "rust".to_owned())
    });
    format!("{} {exe}", std::process::id())
}
