//! Cache names: one file name inside the cache directory, never a path.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// The longest name accepted, in bytes: 225, so that every file named after a cache stays
/// within the 255-byte file-name limit of Linux, macOS and Windows file systems. The
/// longest is a save's temporary file, `.<name>.<pid>-<16 hex digits>.tmp` (30 bytes
/// more); the lock file adds 9 (`.lockfile`), its guard 15, its queue directory 15, a kept corrupt copy
/// 22 (`.corrupt-<seconds>-<n>`). A name of 255 bytes, accepted before, could be saved by
/// no backend that keeps a file beside the cache.
pub const MAX_NAME_LEN: usize = 225;

/// The suffix of lock files; a cache name ending in it would be another cache's lock file.
pub(crate) const LOCK_SUFFIX: &str = ".lockfile";

/// Added to a lock file's name for its guard file (see [`crate::lock`]).
pub(crate) const GUARD_SUFFIX: &str = ".guard";

/// The MSAL lock file of the cache at `cache_path`: `<cache path>.lockfile`, where the
/// JS, Python and .NET extensions put it too.
pub fn lock_path_for(cache_path: &Path) -> PathBuf {
    let mut path = cache_path.as_os_str().to_owned();
    path.push(LOCK_SUFFIX);
    PathBuf::from(path)
}

/// The name of the cache whose lock file is named `file_name`: `Some("msal.cache")` for
/// `msal.cache.lockfile`, `None` for a name that is not a lock file's.
pub fn cache_name_of_lock(file_name: &str) -> Option<&str> {
    file_name
        .strip_suffix(LOCK_SUFFIX)
        .filter(|name| !name.is_empty())
}

/// Whether `file_name` is the guard file of a cache's lock (`msal.cache.lockfile.guard`):
/// an empty file the lock keeps beside the lock file and never removes; it belongs to the
/// lock, and is neither a cache nor a lock file.
pub fn is_lock_guard(file_name: &str) -> bool {
    file_name
        .strip_suffix(GUARD_SUFFIX)
        .and_then(cache_name_of_lock)
        .is_some()
}

/// Checks that `name` can name a cache: one file name in the cache directory.
///
/// Refused, each with an [`InvalidName`](ErrorKind::InvalidName) error that says why:
/// - the empty name, `.` and `..`;
/// - a name containing `/` or `\` (a path, not a name) or NUL;
/// - a name longer than [`MAX_NAME_LEN`] bytes;
/// - a name ending in `.lockfile` or `.lockfile.guard`, which is where another cache keeps
///   its lock.
pub fn validate_name(name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it names a directory")
    } else if name.contains(['/', '\\']) {
        Some("it contains a path separator; give a file name, not a path")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else if name.len() > MAX_NAME_LEN {
        Some(
            "it is longer than 225 bytes, the limit that leaves room for the suffixes of the files named after it",
        )
    } else if name.ends_with(LOCK_SUFFIX) {
        Some("it ends in .lockfile, the suffix of lock files")
    } else if is_lock_guard(name) {
        Some("it ends in .lockfile.guard, the suffix of lock guard files")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(Error::new(
            ErrorKind::InvalidName,
            format!("invalid cache name {name:?}: {why}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_paths_and_their_cache_names_round_trip() {
        let lock = lock_path_for(Path::new("/home/u/.IdentityService/msal.cache"));
        assert_eq!(
            lock,
            Path::new("/home/u/.IdentityService/msal.cache.lockfile")
        );
        let file_name = lock.file_name().and_then(|n| n.to_str()).expect("utf-8");
        assert_eq!(cache_name_of_lock(file_name), Some("msal.cache"));
        assert_eq!(cache_name_of_lock("msal.cache"), None);
        assert_eq!(cache_name_of_lock(".lockfile"), None);
        assert!(is_lock_guard("msal.cache.lockfile.guard"));
        assert!(!is_lock_guard("msal.cache.lockfile"));
        assert!(!is_lock_guard(".lockfile.guard"));
    }

    #[test]
    fn accepts_sdk_names() {
        for name in [
            "msal.cache",
            "msal.cache.nocae",
            "msal.cache.cae",
            "my-app",
            ".hidden",
        ] {
            validate_name(name).expect(name);
        }
        validate_name(&"x".repeat(MAX_NAME_LEN)).expect("225 bytes is fine");
    }

    #[test]
    fn refuses_bad_names_with_a_reason() {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for (name, reason) in [
            ("", "empty"),
            (".", "directory"),
            ("..", "directory"),
            ("a/b", "separator"),
            ("../msal.cache", "separator"),
            ("a\\b", "separator"),
            ("a\0b", "NUL"),
            (long.as_str(), "225"),
            ("msal.cache.lockfile", ".lockfile"),
            ("msal.cache.lockfile.guard", ".lockfile.guard"),
        ] {
            let err = validate_name(name).expect_err(name);
            assert_eq!(err.kind(), ErrorKind::InvalidName);
            assert!(err.to_string().contains(reason), "{err}");
        }
    }
}
