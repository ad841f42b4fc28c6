//! [`FilePersistence`]: the cache blob in a plain file, written atomically and durably.

pub(crate) mod temp;

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
    sync::{Arc, Once},
    time::{Duration, SystemTime},
};

use crate::{
    error::{Error, ErrorKind, Result},
    lock::FileLock,
    name::lock_path_for,
    persistence::{CachePersistence, Capabilities, ChangeToken, Description, LockGuard},
};

/// The cache blob in a file, with its lock at `<path>.lockfile`.
///
/// The blob is stored as it is, unencrypted: on its own this is the plaintext storage that
/// the options allow only with `unsafe_allow_unencrypted_storage`. The secure backends use
/// it for their marker files.
///
/// - **Save** writes a temporary file in the same directory, fsyncs it, renames it over the
///   cache file and fsyncs the directory: readers and crashes see the old or the new blob,
///   never a torn one. A failed save removes its temporary file, and the first save of a
///   `FilePersistence` removes those that killed savers left behind.
/// - **Modes**: the cache file is created 0600 and every directory this type creates is
///   0700 (subject to the umask, which can only narrow them). Existing directories are
///   not changed.
/// - **Change token**: device, inode, size and nanosecond modification and change times.
///   Each save gives the new file a modification time strictly later than the file it
///   replaces, so the token moves even for same-size saves within one clock tick.
/// - **Lock**: [`FileLock`] on `<path>.lockfile`, compatible with the MSAL lock files.
#[derive(Debug, Clone)]
pub struct FilePersistence {
    path: PathBuf,
    lock: FileLock,
    /// Orphaned temporary files are swept once per persistence (and its clones), not on
    /// every save: a directory listing per save would be wasted work.
    swept: Arc<Once>,
}

impl FilePersistence {
    /// A persistence for the cache file at `path`. Touches nothing on disk.
    ///
    /// `path` must name a file (have a file name); otherwise the error is of kind
    /// [`InvalidName`](ErrorKind::InvalidName).
    pub fn new(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        if path.file_name().is_none() {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!("{} does not name a file", path.display()),
            ));
        }
        let lock = FileLock::new(lock_path_for(&path));
        Ok(FilePersistence {
            path,
            lock,
            swept: Arc::new(Once::new()),
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock this persistence takes in [`CachePersistence::lock`].
    pub fn file_lock(&self) -> &FileLock {
        &self.lock
    }

    fn directory(&self) -> &Path {
        directory_of(&self.path)
    }

    /// Writes `data` to a new temporary file beside the cache file and makes it durable.
    fn write_temp(&self, data: &[u8]) -> Result<PathBuf> {
        let dir = self.directory();
        create_private_dir(dir)?;
        self.swept
            .call_once(|| temp::remove_orphans(&self.path, dir));
        let temp = temp::path_for(&self.path, dir);
        let mut file = open_private_new(&temp).map_err(|e| Error::io("create", &temp, e))?;
        let written = file
            .write_all(data)
            .and_then(|()| file.set_modified(self.next_mtime()))
            .and_then(|()| file.sync_all());
        match written {
            Ok(()) => Ok(temp),
            Err(e) => {
                let _ = fs::remove_file(&temp);
                Err(Error::io("write", &temp, e))
            }
        }
    }

    /// The first half of a save: `data` written and made durable in a temporary file
    /// beside the cache file, which is not touched yet. [`StagedSave::commit`] puts it in
    /// place; dropping the staged save instead removes the temporary file.
    ///
    /// For the secure backends' markers: staging first finds out whether the marker can
    /// be written at all (its directory unreachable, refused or full) before the secret
    /// changes, and committing after the secret has changed moves the change token only
    /// once the new secret is there.
    pub(crate) fn stage(&self, data: &[u8]) -> Result<StagedSave<'_>> {
        Ok(StagedSave {
            file: self,
            temp: Some(self.write_temp(data)?),
        })
    }

    /// Whether a staged save could be put in place: `Err` when a directory stands at the
    /// cache path (a rename cannot replace it), so that the secure backends find out
    /// before their secret changes. Anything else there, or nothing, is replaceable.
    pub(crate) fn check_replaceable(&self) -> Result<()> {
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.is_dir() => Err(Error::io(
                "replace",
                &self.path,
                std::io::Error::new(
                    std::io::ErrorKind::IsADirectory,
                    "a directory stands where the file goes",
                ),
            )),
            _ => Ok(()),
        }
    }

    /// A modification time later than the current cache file's, so that the change token
    /// moves even when the clock has not ticked since the last save.
    fn next_mtime(&self) -> SystemTime {
        let now = SystemTime::now();
        match fs::metadata(&self.path).and_then(|m| m.modified()) {
            Ok(previous) if previous >= now => previous + Duration::from_nanos(1),
            _ => now,
        }
    }
}

/// A save of a [`FilePersistence`] written but not yet in place; see
/// [`FilePersistence::stage`].
#[derive(Debug)]
pub(crate) struct StagedSave<'a> {
    file: &'a FilePersistence,
    /// `None` once committed.
    temp: Option<PathBuf>,
}

impl StagedSave<'_> {
    /// Renames the temporary file over the cache file and makes the rename durable.
    ///
    /// A failed rename removes the temporary file; the cache file is then unchanged.
    pub(crate) fn commit(mut self) -> Result<()> {
        let Some(temp) = self.temp.take() else {
            return Ok(());
        };
        if let Err(e) = fs::rename(&temp, &self.file.path) {
            let _ = fs::remove_file(&temp);
            return Err(Error::io("replace", &self.file.path, e));
        }
        sync_dir(self.file.directory())
    }
}

impl Drop for StagedSave<'_> {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            // Not committed: the save was abandoned and leaves nothing behind.
            let _ = fs::remove_file(&temp);
        }
    }
}

impl CachePersistence for FilePersistence {
    fn describe(&self) -> Description {
        Description::new(
            "file",
            self.path.display().to_string(),
            Capabilities::full(),
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        let mut file = match open_for_read(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &self.path, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io("inspect", &self.path, e))?;
        if !meta.is_file() {
            return Err(Error::new(
                ErrorKind::CorruptData,
                format!(
                    "{} is not a regular file; it was left as it is",
                    self.path.display()
                ),
            ));
        }
        let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.read_to_end(&mut data)
            .map_err(|e| Error::io("read", &self.path, e))?;
        Ok(Some(data))
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        self.stage(data)?.commit()
    }

    fn delete(&self) -> Result<bool> {
        match fs::remove_file(&self.path) {
            Ok(()) => {
                sync_dir(self.directory())?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("delete", &self.path, e)),
        }
    }

    fn version(&self) -> Result<Option<ChangeToken>> {
        match fs::metadata(&self.path) {
            Ok(meta) => Ok(Some(change_token(&meta))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("inspect", &self.path, e)),
        }
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        create_private_dir(self.directory())?;
        self.lock.acquire(wait).map(LockGuard::new)
    }
}

/// Creates `dir` and its missing parents with mode 0700; an existing directory is fine.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        // A recursive create reports "exists" only when the path (or a parent) exists
        // as something other than a directory: the cache directory cannot exist there.
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::with_source(
                ErrorKind::StorageUnavailable,
                format!(
                    "could not create directory {}: it or a parent exists and is not a directory",
                    dir.display()
                ),
                e,
            )
        } else {
            Error::io("create directory", dir, e)
        }
    })
}

/// The directory a file at `path` is in: its parent, or `.` for a bare file name.
pub(crate) fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Creates a new file that only its owner can read and write.
pub(crate) fn open_private_new(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Opens for reading without blocking on a FIFO someone put at the cache path.
fn open_for_read(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    options.open(path)
}

/// Makes a rename or unlink in `dir` durable. Windows has no directory fsync; NTFS
/// journals the rename itself.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("sync directory", dir, e))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(unix)]
fn change_token(meta: &fs::Metadata) -> ChangeToken {
    use std::os::unix::fs::MetadataExt;
    ChangeToken::new(format!(
        "{}:{}:{}:{}.{:09}:{}.{:09}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    ))
}

#[cfg(not(unix))]
fn change_token(meta: &fs::Metadata) -> ChangeToken {
    let nanos = |t: std::io::Result<SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    };
    ChangeToken::new(format!(
        "{}:{}:{}",
        meta.len(),
        nanos(meta.modified()),
        nanos(meta.created())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_file_name_is_in_the_current_directory() {
        assert_eq!(directory_of(Path::new("msal.cache")), Path::new("."));
        assert_eq!(directory_of(Path::new("/d/msal.cache")), Path::new("/d"));
    }
}
