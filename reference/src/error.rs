//! The one error type of every persistence operation.
//!
//! Generic code (the cache plugin, the conformance suite, a retry policy) matches on
//! [`Error::kind`], never on messages. The operating-system error, when there is one, is
//! kept as [`std::error::Error::source`].
//!
//! Messages name the operation and the location; they never contain cache contents.

use std::{fmt, io, path::Path};

/// A boxed underlying cause, typically an [`io::Error`] or a D-Bus error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for results of persistence operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms generic code can act on.
///
/// New kinds may be added, so a `match` needs a wildcard arm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The storage cannot be reached at all: no D-Bus session bus, no Secret Service,
    /// a cache directory that cannot exist (a parent is a regular file), no home directory.
    StorageUnavailable,
    /// The OS refused access (permission denied, read-only file system) or the secure
    /// store is locked.
    AccessDenied,
    /// The plugin does not support this operation; it says so instead of pretending.
    NotSupported,
    /// What is stored cannot be read back as a cache blob (not a regular file,
    /// undecodable ciphertext, bad encoding). The stored data is left as it was.
    CorruptData,
    /// The cross-process lock was not acquired within the wait budget.
    LockTimeout,
    /// The cache name is not acceptable (empty, a path separator, `..`, NUL, too long).
    InvalidName,
    /// The blob is larger than the plugin can store.
    TooLarge,
    /// No space left on the device, or a quota was exceeded.
    StorageFull,
    /// Any other I/O failure.
    Io,
    /// Anything else, for example a plugin process that broke its protocol.
    Other,
}

impl ErrorKind {
    /// A stable snake_case name, used in reports and in the process protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::StorageUnavailable => "storage_unavailable",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::NotSupported => "not_supported",
            ErrorKind::CorruptData => "corrupt_data",
            ErrorKind::LockTimeout => "lock_timeout",
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::StorageFull => "storage_full",
            ErrorKind::Io => "io",
            ErrorKind::Other => "other",
        }
    }

    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::StorageUnavailable,
        ErrorKind::AccessDenied,
        ErrorKind::NotSupported,
        ErrorKind::CorruptData,
        ErrorKind::LockTimeout,
        ErrorKind::InvalidName,
        ErrorKind::TooLarge,
        ErrorKind::StorageFull,
        ErrorKind::Io,
        ErrorKind::Other,
    ];

    /// The inverse of [`ErrorKind::as_str`].
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed persistence operation: a [`kind`](Error::kind), a message for people, and the
/// underlying cause as [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl Error {
    /// An error of `kind` with a message and no underlying cause.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` caused by `source`.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An I/O failure while doing `action` on `path`; the kind follows the OS error.
    ///
    /// The message reads "could not {action} {path}: {os error}".
    pub fn io(action: &str, path: &Path, source: io::Error) -> Self {
        let kind = kind_of_io(&source);
        Error::with_source(
            kind,
            format!("could not {action} {}: {source}", path.display()),
            source,
        )
    }

    /// The operation is not supported by `plugin`.
    pub fn not_supported(plugin: &str, operation: &str) -> Self {
        Error::new(
            ErrorKind::NotSupported,
            format!("{plugin} does not support {operation}"),
        )
    }

    /// What went wrong, for generic code to act on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Maps an OS error to the kind generic code acts on.
fn kind_of_io(err: &io::Error) -> ErrorKind {
    use io::ErrorKind as K;
    match err.kind() {
        K::PermissionDenied | K::ReadOnlyFilesystem => ErrorKind::AccessDenied,
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => ErrorKind::StorageFull,
        K::NotADirectory => ErrorKind::StorageUnavailable,
        _ => ErrorKind::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn kind_names_round_trip() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::from_name("nonsense"), None);
    }

    #[test]
    fn io_errors_keep_the_os_error_as_source() {
        let os = io::Error::from_raw_os_error(libc_enospc());
        let err = Error::io("write", Path::new("/x/msal.cache"), os);
        assert_eq!(err.kind(), ErrorKind::StorageFull);
        assert!(
            err.to_string()
                .starts_with("could not write /x/msal.cache: ")
        );
        let source = err.source().expect("source kept");
        assert!(source.downcast_ref::<io::Error>().is_some());
    }

    #[test]
    fn permission_denied_is_access_denied() {
        let err = Error::io(
            "read",
            Path::new("/x"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert_eq!(err.kind(), ErrorKind::AccessDenied);
    }

    fn libc_enospc() -> i32 {
        28
    }
}
