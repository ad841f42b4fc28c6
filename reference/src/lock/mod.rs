//! The cross-process lock on `<cache path>.lockfile`. (First version: O_EXCL + flock,
//! polling; stale-holder recovery and fast hand-off are being built.)

use std::{
    fs::{self, File},
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    error::{Error, ErrorKind, Result},
    file::open_private_new,
    persistence::HeldLock,
};

/// A lock file shared with the MSAL extensions of the other SDKs.
#[derive(Debug, Clone)]
pub struct FileLock {
    path: PathBuf,
}

impl FileLock {
    /// The lock at `path` (conventionally `<cache path>.lockfile`). Touches nothing.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileLock { path: path.into() }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the lock, waiting at most `wait`.
    pub fn acquire(&self, wait: Duration) -> Result<FileLockGuard> {
        let deadline = Instant::now() + wait;
        loop {
            match open_private_new(&self.path) {
                Ok(mut file) => {
                    file.lock().map_err(|e| Error::io("lock", &self.path, e))?;
                    let _ = write!(file, "{} rust", std::process::id());
                    return Ok(FileLockGuard {
                        path: self.path.clone(),
                        file,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create lock file", &self.path, e)),
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::LockTimeout,
                    format!("timed out after {wait:?} waiting for the lock {}", self.path.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A held [`FileLock`].
#[derive(Debug)]
pub struct FileLockGuard {
    path: PathBuf,
    file: File,
}

impl HeldLock for FileLockGuard {
    fn release(self: Box<Self>) -> Result<()> {
        let removed = fs::remove_file(&self.path);
        drop(self.file);
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove lock file", &self.path, e)),
        }
    }
}
