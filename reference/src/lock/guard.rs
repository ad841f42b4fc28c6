//! The guard: an OS lock on `<lock path>.guard`, a file nobody deletes, held by our
//! processes as long as the MSAL lock, so that a lock file deleted under its holder by
//! another SDK cannot let two of ours in (see the module documentation of `lock`).
//!
//! The guard file is opened once per [`FileLock`](super::FileLock) (and its clones) and
//! kept open, rather than opened on every attempt: an open is a path lookup and a file
//! creation check, which cost the uncontended acquire more than the lock itself. Taking
//! and releasing the guard are then a `flock` and an unlock on that open file.

use std::{
    ffi::OsString,
    fs::{File, OpenOptions, TryLockError},
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use crate::{
    error::{Error, Result},
    name::GUARD_SUFFIX,
};

/// The guard file of one lock, opened on first use and kept open.
///
/// A `FileLock` and its clones share it. That is sound because one process takes the
/// guard from one thread at a time: every acquire of a path first takes the in-process
/// slot of that path (`super::local`), and releases the guard before that slot.
#[derive(Debug, Default)]
pub(super) struct GuardFile {
    /// `None` until first used; replaced when the path names another file, and in a
    /// forked child, with the pid that opened it.
    file: Mutex<Option<(u32, Arc<File>)>>,
}

/// A held guard; dropping it (or the death of the process) releases it.
#[derive(Debug)]
pub(super) struct Guard {
    file: Arc<File>,
    /// The process that took it: a forked child does not release its parent's guard.
    pid: u32,
}

impl GuardFile {
    /// Takes the guard of the lock at `lock_path` if no other holder has it.
    ///
    /// - Free: `Ok(Some(guard))`, the guard file created (0600) if it was missing.
    /// - Held by another process of ours (or another handle: callers serialise those
    ///   first): `Ok(None)`.
    /// - A file system without OS locks: `Ok(Some(..))` unlocked, since the lock file
    ///   alone then decides, as before.
    /// - The guard file cannot be opened or created (the directory is not writable, a
    ///   directory stands at its path): `Err` of the kind of the OS error.
    ///
    /// A guard file that was removed or replaced since it was opened (nothing of ours
    /// removes it, but a person can) is noticed once its lock is taken: the lock of a file
    /// the path no longer names excludes nobody, so it is dropped and the file at the
    /// path opened instead.
    pub(super) fn try_take(&self, lock_path: &Path) -> Result<Option<Guard>> {
        let path = path_for(lock_path);
        let mut file = self.open(&path)?;
        loop {
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                    return Ok(Some(Guard::new(file)));
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
            }
            let guard = Guard::new(file);
            if still_named(&guard.file, &path)
                .map_err(|e| Error::io("inspect lock guard", &path, e))?
            {
                return Ok(Some(guard));
            }
            drop(guard);
            file = self.reopen(&path)?;
        }
    }

    /// The open guard file, opened now if it is not yet.
    fn open(&self, path: &Path) -> Result<Arc<File>> {
        match self.current() {
            Some(file) => Ok(file),
            None => self.reopen(path),
        }
    }

    /// Opens the file at `path` and keeps it in place of the one held so far.
    fn reopen(&self, path: &Path) -> Result<Arc<File>> {
        let file = Arc::new(open(path).map_err(|e| Error::io("open lock guard", path, e))?);
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((std::process::id(), Arc::clone(&file)));
        Ok(file)
    }

    /// The file this process opened. A forked child must not use its parent's: `flock`
    /// locks belong to the open file, which the two share, so the child would take the
    /// guard its parent holds, and its release would release the parent's.
    fn current(&self) -> Option<Arc<File>> {
        // A plain assignment under the lock: the value is consistent even after a panic.
        let current = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        match current.as_ref() {
            Some((pid, file)) if *pid == std::process::id() => Some(Arc::clone(file)),
            _ => None,
        }
    }
}

impl Guard {
    fn new(file: Arc<File>) -> Guard {
        Guard {
            file,
            pid: std::process::id(),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // A forked child dropping a guard it inherited must not unlock it: the open file
        // and its lock are its parent's too, and the parent still holds the lock.
        if self.pid != std::process::id() {
            return;
        }
        // The file stays open for the next acquire; only its lock goes. Unlocking a lock
        // this open file holds does not fail in practice; if it did, the lock would stay
        // until the `FileLock` is dropped, so say so.
        if let Err(e) = self.file.unlock() {
            tracing::warn!(error = %e, "releasing the cache lock guard failed");
        }
    }
}

/// Whether the guard file we hold open is still the one at `path`.
///
/// Unix: it still has a name, which costs an `fstat` and no path lookup. Nothing renames
/// guard files, so a file with a name is the one at `path`; a removed or replaced one has
/// none left.
#[cfg(unix)]
fn still_named(file: &File, _path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.nlink() > 0)
}

/// Elsewhere the link count is not in std: compare with the file at `path`.
#[cfg(not(unix))]
fn still_named(file: &File, path: &Path) -> io::Result<bool> {
    super::file_id::same_file(file, path)
}

/// `<lock path>.guard`.
fn path_for(lock_path: &Path) -> PathBuf {
    let mut name = OsString::from(lock_path.as_os_str());
    name.push(GUARD_SUFFIX);
    PathBuf::from(name)
}

fn open(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
