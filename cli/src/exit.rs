//! The exit codes, one per outcome a script may act on, and the failure that carries one.

use serde::Serialize;

/// An exit code. `doctor` exits with the code of the first problem it reports; the other
/// subcommands with the code of what stopped them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Success; for `doctor`, healthy.
    Ok,
    /// An operation failed for a reason with no code of its own (an I/O error, say).
    Failed,
    /// The command line is wrong (clap's own code).
    Usage,
    /// `clear` was not confirmed.
    NotConfirmed,
    /// No cache of that name.
    NotFound,
    /// A live process holds the cache lock: `unlock` refused, or `clear` timed out.
    LockHeld,
    /// No D-Bus session bus.
    NoBus,
    /// No Secret Service on the bus.
    NoSecretService,
    /// The keyring (default collection) is locked.
    KeyringLocked,
    /// The Secret Service is there but unusable otherwise (no default collection, the
    /// validation probe failed).
    KeyringUnusable,
    /// The cache directory or a cache file cannot be read or written, or is not the
    /// user's.
    Permissions,
    /// A cache file or the directory is open to other users (wider than 0600/0700).
    ModesTooWide,
    /// A lock file whose holder is dead.
    StaleLock,
    /// A cache that does not parse.
    CorruptCache,
}

impl Code {
    /// Every code, in the order of [`HELP`].
    pub const ALL: [Code; 14] = [
        Code::Ok,
        Code::Failed,
        Code::Usage,
        Code::NotConfirmed,
        Code::NotFound,
        Code::LockHeld,
        Code::NoBus,
        Code::NoSecretService,
        Code::KeyringLocked,
        Code::KeyringUnusable,
        Code::Permissions,
        Code::ModesTooWide,
        Code::StaleLock,
        Code::CorruptCache,
    ];

    /// The process exit status.
    pub fn value(self) -> u8 {
        match self {
            Code::Ok => 0,
            Code::Failed => 1,
            Code::Usage => 2,
            Code::NotConfirmed => 3,
            Code::NotFound => 4,
            Code::LockHeld => 5,
            Code::NoBus => 10,
            Code::NoSecretService => 11,
            Code::KeyringLocked => 12,
            Code::KeyringUnusable => 13,
            Code::Permissions => 20,
            Code::ModesTooWide => 21,
            Code::StaleLock => 22,
            Code::CorruptCache => 23,
        }
    }
}

/// The exit codes as `--help` shows them.
pub const HELP: &str = "\
Exit codes:
   0  success; for doctor: healthy
   1  an operation failed (see the message)
   2  bad command line
   3  clear was not confirmed
   4  no cache of that name
   5  a live process holds the cache lock (unlock refused, clear timed out)
  10  no D-Bus session bus
  11  no Secret Service on the bus
  12  the keyring is locked
  13  the Secret Service is unusable otherwise
  20  permission problem on the cache directory or a cache file
  21  a cache file or the directory is open to other users
  22  a lock file whose holder is dead
  23  a cache that does not parse
doctor exits with the code of the first problem it lists.";

/// What stopped a subcommand: its exit code and a message for people, which never
/// contains a secret.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<identity_cache_persistence::Error> for Failure {
    fn from(err: identity_cache_persistence::Error) -> Self {
        use identity_cache_persistence::ErrorKind;
        let code = match err.kind() {
            ErrorKind::AccessDenied => Code::Permissions,
            ErrorKind::LockTimeout => Code::LockHeld,
            ErrorKind::CorruptData => Code::CorruptCache,
            ErrorKind::InvalidName => Code::Usage,
            _ => Code::Failed,
        };
        Failure::new(code, err.to_string())
    }
}
