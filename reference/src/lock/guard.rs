//! The guard: an OS lock on `<lock path>.guard`, a file nobody deletes, held by our
//! processes as long as the MSAL lock, so that a lock file deleted under its holder by
//! another SDK cannot let two of ours in (see the module documentation of `lock`).

use std::{
    ffi::OsString,
    fs::{File, OpenOptions, TryLockError},
    io,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    name::GUARD_SUFFIX,
};

/// A held guard; dropping it (or the death of the process) releases it.
#[derive(Debug)]
pub(super) struct Guard {
    _file: File,
}

impl Guard {
    /// Takes the guard of the lock at `lock_path` if no other holder has it.
    ///
    /// - Free: `Ok(Some(guard))`, the guard file created (0600) if it was missing.
    /// - Held by another process of ours (or another handle: callers serialise those
    ///   first): `Ok(None)`.
    /// - A file system without OS locks: `Ok(Some(..))` unlocked, since the lock file
    ///   alone then decides, as before.
    /// - The guard file cannot be opened or created (the directory is not writable, a
    ///   directory stands at its path): `Err` of the kind of the OS error.
    pub(super) fn try_take(lock_path: &Path) -> Result<Option<Guard>> {
        let path = path_for(lock_path);
        let file = open(&path).map_err(|e| Error::io("open lock guard", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Guard { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                Ok(Some(Guard { _file: file }))
            }
            Err(TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
        }
    }
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
