//! Creating the lock file: exclusively, as every SDK does, and where the file system
//! allows with its content already in it (step 2 of the protocol in the module
//! documentation of `lock`), so that a holder of ours killed at any point never leaves an
//! empty lock file that waiters could only call stale after `GRACE`.
//!
//! On Unix the content is written once per [`FileLock`](super::FileLock) to a private
//! file beside the lock, its *stock*, `.lockfile.<pid>-<random>.tmp`, and every acquire
//! hard-links the stock to the lock path. `link` fails when the path exists, as `O_EXCL`
//! does, so creation stays exclusive and interop is unchanged; and a link and an unlink
//! are all an uncontended acquire and release change in the directory, fewer than the
//! `O_EXCL` create and unlink the other SDKs do, since no file is made or freed. Writing a
//! fresh file for each acquire (create, write, link, unlink: twice the directory changes
//! and a page of data) cost twice the create and unlink.
//!
//! The stock is the lock file's inode, so what others do to the lock file happens to it:
//! Python's portalocker variant, falling through after 5 s, truncates the file it opens
//! and writes its own pid. So before each link the stock is checked with one `fstat`
//! (still ours: same size and modification time as written, one name, and this process's
//! pid), and replaced when it is not. The stock is removed when the last clone of its
//! `FileLock` is dropped; one left by a process that was killed or exited without
//! dropping it is removed by the first acquire of a later process, as an orphaned
//! temporary file (`temp::remove_orphans`: its writer no longer runs).
//!
//! Where the file system has no hard links, and on Windows, the lock file is created with
//! `O_EXCL` and its content written after its OS lock.

#[cfg(unix)]
use std::sync::Mutex;
use std::{
    fs::{File, OpenOptions},
    io,
    path::Path,
    sync::{Arc, OnceLock},
};

#[cfg(unix)]
use super::lock;

#[cfg(unix)]
use crate::backends::file::{directory_of, temp};

/// The stock of one [`FileLock`](super::FileLock) and its clones, made on first use (one
/// process uses it from one thread at a time, see `super::local`).
#[derive(Debug, Default)]
pub(super) struct StockSlot {
    #[cfg(unix)]
    stock: Mutex<Option<Arc<stock::Stock>>>,
}

/// Creates the lock file exclusively, with its content when the file system allows;
/// `true` when the content is written. `Err` of kind `AlreadyExists` when the lock file
/// exists (see `super::is_taken` for Windows).
///
/// The returned file may be shared with the stock: release its OS lock with `unlock`
/// rather than by closing it.
#[cfg(unix)]
pub(super) fn create_with_content(path: &Path, slot: &StockSlot) -> io::Result<(Arc<File>, bool)> {
    let dir = directory_of(path);
    let stem = stem(dir);
    let mut current = lock(&slot.stock);
    // Twice at most: a stock whose private name someone removed is made again once.
    for _ in 0..2 {
        let stock = match current.as_ref() {
            Some(stock) if stock.is_intact() => Arc::clone(stock),
            _ => {
                // A missing or read-only directory fails here as it would for the lock file.
                let fresh = Arc::new(stock::Stock::create(&stem, dir, &lock_file_content())?);
                *current = Some(Arc::clone(&fresh));
                fresh
            }
        };
        match std::fs::hard_link(stock.path(), path) {
            Ok(()) => return Ok((stock.file(), true)),
            // No hard links on this file system: create, then write after the OS lock.
            Err(e) if no_hard_links(&e) => {
                return create_new(path).map(|file| (Arc::new(file), false));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && dir.is_dir() => {
                *current = None;
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "the lock file's stock vanished twice as it was linked",
    ))
}

/// Creates the lock file exclusively; its content follows once the OS lock is held.
#[cfg(not(unix))]
pub(super) fn create_with_content(path: &Path, _slot: &StockSlot) -> io::Result<(Arc<File>, bool)> {
    create_new(path).map(|file| (Arc::new(file), false))
}

/// Removes the stocks (and older temporary lock files) that processes which no longer
/// run left beside the lock at `path`: killed, or exited without dropping their lock.
#[cfg(unix)]
pub(super) fn sweep_orphans(path: &Path) {
    let dir = directory_of(path);
    temp::remove_orphans(&stem(dir), dir);
}

/// Windows has no stocks.
#[cfg(not(unix))]
pub(super) fn sweep_orphans(_path: &Path) {}

/// Stocks are named `.lockfile.<pid>-<random>.tmp`, not after the lock file: a cache name
/// of the longest valid length would make a name over the file system's 255 bytes.
#[cfg(unix)]
fn stem(dir: &Path) -> std::path::PathBuf {
    dir.join("lockfile")
}

#[cfg(unix)]
fn no_hard_links(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported || e.raw_os_error() == Some(libc::EPERM)
}

#[cfg(unix)]
mod stock {
    use std::{
        fs::File,
        io::{self, Write},
        os::unix::fs::MetadataExt,
        path::{Path, PathBuf},
        sync::Arc,
    };

    use crate::backends::file::temp;

    /// The private file whose links are our lock files.
    #[derive(Debug)]
    pub(super) struct Stock {
        file: Arc<File>,
        path: PathBuf,
        /// The process that wrote it: a forked child makes its own.
        pid: u32,
        /// Size and modification time (s, ns) as written, to notice writes of others.
        written: (u64, i64, i64),
    }

    impl Stock {
        pub(super) fn create(stem: &Path, dir: &Path, content: &str) -> io::Result<Stock> {
            let path = temp::path_for(stem, dir);
            let mut file = super::create_new(&path)?;
            let written = file
                .write_all(content.as_bytes())
                .and_then(|()| file.metadata());
            match written {
                Ok(meta) => Ok(Stock {
                    file: Arc::new(file),
                    path,
                    pid: std::process::id(),
                    written: (meta.size(), meta.mtime(), meta.mtime_nsec()),
                }),
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    Err(e)
                }
            }
        }

        /// Still ours as written: this process's, its content untouched, and linked
        /// only under its private name (not left at the lock path, not removed).
        pub(super) fn is_intact(&self) -> bool {
            self.pid == std::process::id()
                && self.file.metadata().is_ok_and(|meta| {
                    meta.nlink() == 1
                        && (meta.size(), meta.mtime(), meta.mtime_nsec()) == self.written
                })
        }

        pub(super) fn path(&self) -> &Path {
            &self.path
        }

        pub(super) fn file(&self) -> Arc<File> {
            Arc::clone(&self.file)
        }
    }

    impl Drop for Stock {
        fn drop(&mut self) {
            // A forked child's copy is its parent's to remove.
            if self.pid == std::process::id() {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Creates the lock file exclusively, owner-only.
pub(super) fn create_new(path: &Path) -> io::Result<File> {
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

/// `"<pid> <executable>"`, the format of Python `msal-extensions`, so its users can tell
/// who holds the lock.
pub(super) fn lock_file_content() -> String {
    static EXE: OnceLock<String> = OnceLock::new();
    let exe = EXE.get_or_init(|| {
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "rust".to_owned())
    });
    format!("{} {exe}", std::process::id())
}

#[cfg(all(test, unix))]
mod tests {
    use std::fs;

    use super::*;

    /// Python's portalocker variant, falling through after 5 s, opens the lock file with
    /// truncation and writes its own pid: into our stock, which is the lock file's inode.
    /// The next acquire must not link that content again.
    #[test]
    fn a_stock_someone_else_wrote_to_is_replaced() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.lockfile");
        let slot = StockSlot::default();
        let (file, written) = create_with_content(&path, &slot)?;
        assert!(written);
        assert_eq!(fs::read_to_string(&path)?, lock_file_content());
        fs::write(&path, "4194300 python")?;
        fs::remove_file(&path)?;
        drop(file);
        let (_file, written) = create_with_content(&path, &slot)?;
        assert!(written);
        assert_eq!(fs::read_to_string(&path)?, lock_file_content());
        Ok(())
    }

    /// A stock still linked at the lock path (a release that could not unlink it) is not
    /// linked again; a fresh one is, once the path is free.
    #[test]
    fn a_stock_still_at_the_lock_path_is_not_reused() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.lockfile");
        let slot = StockSlot::default();
        let (first, _) = create_with_content(&path, &slot)?;
        let taken = create_with_content(&path, &slot).map(|_| ());
        assert_eq!(
            taken.map_err(|e| e.kind()),
            Err(io::ErrorKind::AlreadyExists)
        );
        fs::remove_file(&path)?;
        let (second, _) = create_with_content(&path, &slot)?;
        use std::os::unix::fs::MetadataExt;
        assert_ne!(first.metadata()?.ino(), second.metadata()?.ino());
        Ok(())
    }

    /// The stock goes with its last `FileLock`; only the lock's guard and line stay.
    #[test]
    fn the_stock_is_removed_with_its_slot() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.lockfile");
        let slot = StockSlot::default();
        let (file, _) = create_with_content(&path, &slot)?;
        fs::remove_file(&path)?;
        drop(file);
        assert_eq!(fs::read_dir(dir.path())?.count(), 1, "the stock exists");
        drop(slot);
        assert_eq!(fs::read_dir(dir.path())?.count(), 0, "the stock is left");
        Ok(())
    }
}
