//! Looking at a lock file someone else created: is its holder alive, and if not, removing
//! it without ever letting two live holders in.
//!
//! The judgement, in order:
//! 1. Open the file. Gone already: [`Probe::Vanished`].
//! 2. Try its OS lock without blocking. Busy: a live holder that takes the OS lock (this
//!    crate, Python's portalocker variant, .NET), [`Probe::Busy`]. The OS releases that
//!    lock when its holder dies, so a busy lock is never stale.
//! 3. We hold its OS lock now. Check that the path still names the file we opened; if not,
//!    [`Probe::Vanished`] (someone replaced it; look again).
//! 4. Read the pid. The holder may still be alive without an OS lock (MSAL Node, Python's
//!    `filelock` variant), so: a pid that [`liveness`] calls alive is busy; a dead or
//!    reused pid is stale; our own pid is stale too, because our own live holders always
//!    hold the OS lock we just took; no pid (empty or foreign content) is stale only once
//!    the file is older than [`GRACE`], because every SDK creates the file first and writes
//!    its pid a moment later.
//! 5. Stale: check once more, still holding the OS lock on the old file, that the path
//!    names it, and only then unlink the path. Two waiters that both judged the file
//!    stale are serialised by that OS lock: the second gets it only after the first has
//!    unlinked the path, and its check fails, because the path is gone or names a new
//!    file. Holding the old file open keeps its inode number from being reused, so the
//!    check cannot be fooled.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read},
    path::Path,
    time::{Duration, SystemTime},
};

use super::{
    file_id::same_file,
    holder::{Liveness, liveness, parse_pid},
};

/// How old a lock file without a readable pid must be before it counts as stale.
///
/// Every SDK creates the lock file and then writes its pid: MSAL Node and Python write
/// right after the create, Python's portalocker variant after closing, reopening and
/// locking, this crate after taking the OS lock. Two seconds covers those steps on a
/// loaded machine many times over, yet recovers a holder that died between create and
/// write long before the 5 s after which Python's portalocker variant stops waiting.
pub const GRACE: Duration = Duration::from_secs(2);

/// What was found at the lock path.
#[derive(Debug)]
pub(super) enum Probe {
    /// Nothing, or a different file than the one opened: try to create again at once.
    Vanished,
    /// A live holder; wait.
    Busy(Holder),
    /// The file is stale; the probe was asked not to remove it.
    Stale(Holder, &'static str),
    /// The file was stale and has been removed by this probe: try to create again at once.
    Removed(Holder),
}

/// What a probe learnt about the holder of a lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// The pid written in the file, if it could be read.
    pub pid: Option<u32>,
    /// Whether that pid still runs; `None` without a pid, or when the OS lock was busy
    /// (the content is not consulted then).
    pub liveness: Option<Liveness>,
    /// Someone held the file's OS lock.
    pub os_locked: bool,
}

/// Probes the lock file at `path`, and removes it when it is stale and `remove` is set.
/// It only reads the file: a lock file's content is its holder's.
pub(super) fn probe(path: &Path, remove: bool) -> io::Result<Probe> {
    let mut file = match open_existing(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Probe::Vanished),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut observed = Holder {
                pid: None,
                liveness: None,
                os_locked: true,
            };
            // The content is advisory on Unix, readable while locked; on Windows the lock
            // is mandatory and reading it fails: the pid stays unknown.
            if let Ok(content) = read_content(&mut file) {
                observed.pid = parse_pid(&content);
            }
            return Ok(Probe::Busy(observed));
        }
        // No OS locks on this file system (some network file systems): judge by the pid.
        Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    if !same_file(&file, path)? {
        return Ok(Probe::Vanished);
    }
    let meta = file.metadata()?;
    let content = read_content(&mut file)?;
    let written = meta.modified().unwrap_or_else(|_| SystemTime::now());
    let pid = parse_pid(&content);
    let mut observed = Holder {
        pid,
        liveness: None,
        os_locked: false,
    };
    let stale_reason = match pid {
        Some(pid) if pid == std::process::id() => {
            observed.liveness = Some(Liveness::Alive);
            Some("it names this process, which holds no lock on it")
        }
        Some(pid) => {
            let alive = liveness(pid, written);
            observed.liveness = Some(alive);
            match alive {
                Liveness::Alive => None,
                Liveness::Dead => Some("its holder is not running"),
                Liveness::Reused => Some("its holder's pid now belongs to a later process"),
            }
        }
        None => {
            let age = SystemTime::now()
                .duration_since(written)
                .unwrap_or_default();
            (age >= GRACE).then_some("it names no holder and is older than the grace period")
        }
    };
    let Some(reason) = stale_reason else {
        return Ok(Probe::Busy(observed));
    };
    if !remove {
        return Ok(Probe::Stale(observed, reason));
    }
    // Step 5: the check that makes racing breakers safe; see the module documentation.
    if !same_file(&file, path)? {
        return Ok(Probe::Vanished);
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Probe::Vanished),
        Err(e) => return Err(e),
    }
    tracing::warn!(
        path = %path.display(),
        pid = ?observed.pid,
        reason,
        "removed a stale cache lock file"
    );
    // Closing `file` now releases the OS lock on the unlinked inode.
    Ok(Probe::Removed(observed))
}

/// Opens an existing lock file for reading. Never creates, and never blocks on a FIFO
/// someone put there.
pub(super) fn open_existing(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the lock path is not a regular file",
        ));
    }
    Ok(file)
}

/// Lock files are a few dozen bytes; read at most a page of them.
fn read_content(file: &mut File) -> io::Result<Vec<u8>> {
    let mut content = Vec::with_capacity(64);
    file.take(4096).read_to_end(&mut content)?;
    Ok(content)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::{
        fs::OpenOptions,
        io::Write,
        sync::{Arc, Barrier},
    };

    /// Takes the lock as an acquirer does after a removal: exclusive create, OS lock, pid.
    /// Like `FileLock::take_created`, it retries the OS lock while a prober holds it for a
    /// moment: a late breaker probing the new file is not a rival holder. (Giving up at
    /// once left the file created and nobody holding it, seen under load.)
    fn create_and_lock(path: &Path) -> Option<File> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .ok()?;
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(10));
                }
                Err(_) => return None,
            }
        }
        write!(file, "{} test", std::process::id()).ok()?;
        Some(file)
    }

    /// The hazard of the design: several waiters judge one file stale at the same moment.
    /// Exactly one may remove it; none may remove the file the winner created next.
    #[test]
    fn racing_breakers_remove_a_stale_file_once_and_never_the_winners_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Arc::new(dir.path().join("race.lockfile"));
        for round in 0..200 {
            // A pid above Linux's limit: never running.
            std::fs::write(&*path, "4194400 dead").expect("write");
            let threads = 4;
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (path, barrier) = (Arc::clone(&path), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        let probe = probe(&path, true).expect("probe");
                        let removed = matches!(probe, Probe::Removed(_));
                        let held = create_and_lock(&path).map(|file| {
                            // Give a late breaker the chance to do damage.
                            std::thread::sleep(Duration::from_micros(300));
                            let intact = same_file(&file, &path).expect("stat");
                            (file, intact)
                        });
                        (removed, held)
                    })
                })
                .collect();
            let results: Vec<_> = handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect();
            let removals = results.iter().filter(|(removed, _)| *removed).count();
            assert_eq!(removals, 1, "round {round}: {removals} removals");
            let holders: Vec<_> = results
                .iter()
                .filter_map(|(_, held)| held.as_ref())
                .collect();
            assert_eq!(holders.len(), 1, "round {round}: {} holders", holders.len());
            assert!(holders[0].1, "round {round}: the winner's file was removed");
            std::fs::remove_file(&*path).expect("clean up");
        }
    }

    #[test]
    fn a_busy_os_lock_is_never_stale_whatever_the_file_says() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("busy.lockfile");
        let holder = create_and_lock(&path).expect("lock");
        // Content that would be stale without the OS lock: a dead pid, old.
        std::fs::write(&path, "4194400 dead").expect("write");
        holder
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .expect("mtime");
        assert!(matches!(
            probe(&path, true).expect("probe"),
            Probe::Busy(Holder {
                os_locked: true,
                pid: Some(4194400),
                ..
            })
        ));
        assert!(path.exists());
    }
}
