//! Cache names: one file name inside the cache directory, never a path.

use crate::error::{Error, ErrorKind, Result};

/// The longest name accepted, in bytes; the common file-name limit of Linux, macOS and
/// Windows file systems.
pub const MAX_NAME_LEN: usize = 255;

/// The suffix of lock files; a cache name ending in it would be another cache's lock file.
pub(crate) const LOCK_SUFFIX: &str = ".lockfile";

/// Checks that `name` can name a cache: one file name in the cache directory.
///
/// Refused, each with an [`InvalidName`](ErrorKind::InvalidName) error that says why:
/// - the empty name, `.` and `..`;
/// - a name containing `/` or `\` (a path, not a name) or NUL;
/// - a name longer than [`MAX_NAME_LEN`] bytes;
/// - a name ending in `.lockfile`, which is where another cache keeps its lock.
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
        Some("it is longer than 255 bytes")
    } else if name.ends_with(LOCK_SUFFIX) {
        Some("it ends in .lockfile, the suffix of lock files")
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
        validate_name(&"x".repeat(MAX_NAME_LEN)).expect("255 bytes is fine");
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
            (long.as_str(), "255"),
            ("msal.cache.lockfile", ".lockfile"),
        ] {
            let err = validate_name(name).expect_err(name);
            assert_eq!(err.kind(), ErrorKind::InvalidName);
            assert!(err.to_string().contains(reason), "{err}");
        }
    }
}
