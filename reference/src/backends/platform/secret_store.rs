//! [`SecretStorePersistence`]: the blob as one secret in an OS secret store, with a marker
//! file for change detection and the MSAL lock file, over a small [`SecretStore`] trait.
//!
//! This is the part of the macOS Keychain backend that does not touch the Keychain, so it
//! is compiled and tested on every platform; the Keychain itself is a thin
//! [`SecretStore`] (`keychain.rs`).

use std::{
    fmt,
    hash::{DefaultHasher, Hash, Hasher},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    backends::file::FilePersistence,
    error::{BoxError, Error, ErrorKind, Result},
    persistence::{CachePersistence, Capabilities, ChangeToken, Description, LockGuard},
};

/// One secret slot in an OS secret store (a Keychain generic password), as bytes.
///
/// An implementation is bound to one item: it knows its service and account (or whatever
/// names the item) and only reads, replaces or deletes that one.
///
/// - [`get`](Self::get): the secret, `Ok(None)` when there is no such item.
/// - [`set`](Self::set): creates the item, or replaces the secret of the existing item
///   *in place*: stores whose items carry an access list (the Keychain) must not delete
///   and re-create, which would reset the list and prompt the user again.
/// - [`delete`](Self::delete): `Ok(true)` when an item was removed, `Ok(false)` when there
///   was none.
///
/// Failures are a [`StoreError`] saying what kind of failure it is; the persistence turns
/// it into an [`ErrorKind`]. A store whose failures already are this crate's [`Error`]s,
/// with their kind and a message of their own, passes them on as they are
/// (`StoreError::from`). Neither the errors nor `Debug` contain the secret.
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// A short stable backend name for [`Description::backend`], e.g. `"keychain"`.
    fn backend(&self) -> &str;
    /// The item, for people and messages, e.g. `Keychain generic password service=…`.
    fn location(&self) -> String;
    /// The largest secret the store takes, when it has a known limit.
    fn max_size(&self) -> Option<usize> {
        None
    }
    /// Reads the secret; `Ok(None)` when the item does not exist.
    fn get(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Creates the item with `secret`, or replaces the secret of the existing item in place.
    fn set(&self, secret: &[u8]) -> Result<(), StoreError>;
    /// Removes the item; `Ok(false)` when there was none.
    fn delete(&self) -> Result<bool, StoreError>;

    /// A change token for an item stored without a marker file (by a program that keeps
    /// its marker elsewhere); `Ok(None)` when there is no item.
    ///
    /// The default reads the secret and derives the token from its contents, so that a
    /// change of the secret is seen. A store that can tell that an item exists without
    /// reading its secret (the Secret Service, by a lookup) may answer from that instead.
    fn unmarked_token(&self) -> Result<Option<ChangeToken>, StoreError> {
        Ok(self.get()?.map(|secret| {
            let mut hasher = DefaultHasher::new();
            secret.hash(&mut hasher);
            ChangeToken::new(format!("unmarked:{:016x}", hasher.finish()))
        }))
    }
}

/// What kind of failure a [`SecretStore`] met; decides the [`ErrorKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreFailure {
    /// The store is locked, or using it needs a prompt that may not or cannot be shown
    /// (Keychain `errSecInteractionNotAllowed`, e.g. over SSH):
    /// [`AccessDenied`](ErrorKind::AccessDenied).
    Locked,
    /// The store refused this process, or the user declined a prompt:
    /// [`AccessDenied`](ErrorKind::AccessDenied).
    Denied,
    /// There is no store to use (no default keychain):
    /// [`StorageUnavailable`](ErrorKind::StorageUnavailable).
    Unavailable,
    /// The secret is larger than the store takes: [`TooLarge`](ErrorKind::TooLarge).
    TooLarge,
    /// The disk under the store is full, or a quota is exceeded:
    /// [`StorageFull`](ErrorKind::StorageFull).
    Full,
    /// Anything else: [`Other`](ErrorKind::Other).
    Other,
}

impl StoreFailure {
    /// The error kind generic code sees for this failure.
    pub fn kind(self) -> ErrorKind {
        match self {
            StoreFailure::Locked | StoreFailure::Denied => ErrorKind::AccessDenied,
            StoreFailure::Unavailable => ErrorKind::StorageUnavailable,
            StoreFailure::TooLarge => ErrorKind::TooLarge,
            StoreFailure::Full => ErrorKind::StorageFull,
            StoreFailure::Other => ErrorKind::Other,
        }
    }

    fn explain(self) -> &'static str {
        match self {
            StoreFailure::Locked => {
                "it is locked, or unlocking it needs a prompt that cannot be shown here"
            }
            StoreFailure::Denied => "access was refused",
            StoreFailure::Unavailable => "the store is not available",
            StoreFailure::TooLarge => "the cache is larger than the store takes",
            StoreFailure::Full => "the disk under the store is full",
            StoreFailure::Other => "the store failed",
        }
    }
}

/// A failed [`SecretStore`] operation: its [`StoreFailure`] and the store's own error, or
/// an [`Error`] of this crate that already says all of it.
#[derive(Debug)]
pub struct StoreError(Repr);

#[derive(Debug)]
enum Repr {
    Failure {
        failure: StoreFailure,
        source: Option<BoxError>,
    },
    /// Passed on as it is: its kind and message are the store's own.
    Explained(Error),
}

impl StoreError {
    /// A failure of `failure` kind with the store's own error as its cause.
    pub fn new(failure: StoreFailure, source: impl Into<BoxError>) -> Self {
        StoreError(Repr::Failure {
            failure,
            source: Some(source.into()),
        })
    }

    /// A failure of `failure` kind without a further cause.
    pub fn bare(failure: StoreFailure) -> Self {
        StoreError(Repr::Failure {
            failure,
            source: None,
        })
    }

    /// What kind of failure it is.
    pub fn failure(&self) -> StoreFailure {
        match &self.0 {
            Repr::Failure { failure, .. } => *failure,
            Repr::Explained(err) => match err.kind() {
                ErrorKind::AccessDenied => StoreFailure::Denied,
                ErrorKind::StorageUnavailable => StoreFailure::Unavailable,
                ErrorKind::TooLarge => StoreFailure::TooLarge,
                ErrorKind::StorageFull => StoreFailure::Full,
                _ => StoreFailure::Other,
            },
        }
    }

    /// The error callers see: `what` failed (e.g. "could not store the token cache in
    /// …"), because of this failure. An explained error is returned as it is.
    fn into_error(self, what: impl FnOnce() -> String) -> Error {
        match self.0 {
            Repr::Explained(err) => err,
            Repr::Failure { failure, source } => Error::with_source(
                failure.kind(),
                format!("{}: {}", what(), failure.explain()),
                StoreError(Repr::Failure { failure, source }),
            ),
        }
    }
}

impl From<Error> for StoreError {
    /// A failure the store has already put in this crate's terms: its kind and message
    /// reach the caller unchanged.
    fn from(err: Error) -> Self {
        StoreError(Repr::Explained(err))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Failure {
                failure,
                source: Some(source),
            } => write!(f, "{}: {source}", failure.explain()),
            Repr::Failure {
                failure,
                source: None,
            } => f.write_str(failure.explain()),
            Repr::Explained(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            Repr::Failure { source, .. } => source
                .as_deref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            Repr::Explained(err) => std::error::Error::source(err),
        }
    }
}

/// The token cache as the one secret of a [`SecretStore`], with a marker file at the cache
/// path and the MSAL lock file beside it.
///
/// - **Blob**: the secret, byte for byte (the JS, Python and .NET Keychain backends store
///   the UTF-8 JSON as it is). The store encrypts it at rest; nothing under the cache
///   directory holds it.
/// - **Marker**: an empty file at the cache path (0600, its directory 0700), rewritten
///   atomically with every save and removed by [`delete`](CachePersistence::delete), as
///   the SDKs touch theirs. Its change token is this persistence's change token, so
///   checking for changes touches no secret.
/// - **No marker, but an item** (written by a program that keeps its marker elsewhere,
///   such as .NET on macOS): [`version`](CachePersistence::version) returns the store's
///   [`unmarked_token`](SecretStore::unmarked_token).
/// - **Lock**: [`FileLock`](crate::lock::FileLock) at `<cache path>.lockfile`, shared with
///   the SDKs.
/// - **Atomicity** is the store's: a store replaces a secret as a whole.
#[derive(Debug, Clone)]
pub struct SecretStorePersistence<S> {
    store: S,
    marker: FilePersistence,
}

impl<S: SecretStore> SecretStorePersistence<S> {
    /// The cache whose marker file is `cache_path` and whose blob is the secret of
    /// `store`. Touches nothing.
    ///
    /// A path without a file name: [`InvalidName`](ErrorKind::InvalidName).
    pub fn new(cache_path: impl Into<PathBuf>, store: S) -> Result<Self> {
        Ok(SecretStorePersistence {
            store,
            marker: FilePersistence::new(cache_path)?,
        })
    }

    /// The secret store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The same cache (marker, lock) over another store.
    #[cfg(all(target_os = "linux", feature = "secret-service"))]
    pub(crate) fn with_store<T: SecretStore>(self, store: T) -> SecretStorePersistence<T> {
        SecretStorePersistence {
            store,
            marker: self.marker,
        }
    }

    /// The cache path: the marker file, and the name of the lock file.
    pub fn cache_path(&self) -> &Path {
        self.marker.path()
    }

    fn fail(&self, action: &str, err: StoreError) -> Error {
        err.into_error(|| {
            format!(
                "could not {action} the token cache in the {}",
                self.store.location()
            )
        })
    }
}

impl<S: SecretStore> CachePersistence for SecretStorePersistence<S> {
    fn describe(&self) -> Description {
        Description::new(
            self.store.backend(),
            format!(
                "{}; marker {}",
                self.store.location(),
                self.marker.path().display()
            ),
            Capabilities::full()
                .encrypts_at_rest(true)
                .max_size(self.store.max_size()),
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        self.store.get().map_err(|e| self.fail("read", e))
    }

    /// Writes the new marker beside the old one, stores the secret, then puts the new
    /// marker in place.
    ///
    /// - A marker that cannot be written (its directory unreachable, refused or full, or a
    ///   directory standing at its path) fails the save before the secret changes: the
    ///   previous blob is intact and the marker untouched.
    /// - A failure of the store removes the new marker unused: the previous blob and the
    ///   marker are as they were, so peers see no change.
    /// - The marker moves only once the new secret is stored, so a peer that sees it move,
    ///   with the lock or without it (Python's `msal-extensions` reads without), reads the
    ///   new secret.
    /// - If the new marker, written and checked a moment earlier, then still cannot be put
    ///   in place (the directory changed in between), the secret is already stored: the
    ///   save has happened and returns `Ok`, and the failure is logged as a warning, since
    ///   the token did not move and peers may not reload.
    fn save(&self, data: &[u8]) -> Result<()> {
        if let Some(max) = self.store.max_size()
            && data.len() > max
        {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "the token cache is {} bytes; the {} takes at most {max}",
                    data.len(),
                    self.store.location()
                ),
            ));
        }
        let marker = self.marker.stage(b"")?;
        // Found now, not after the secret changed: a directory where the marker goes.
        self.marker.check_replaceable()?;
        self.store.set(data).map_err(|e| self.fail("store", e))?;
        if let Err(err) = marker.commit() {
            tracing::warn!(
                marker = %self.marker.path().display(),
                error = %err,
                "the token cache was stored but its marker could not be moved; other processes may not see the change"
            );
        }
        Ok(())
    }

    /// Removes the secret, then the marker (so that [`version`](CachePersistence::version)
    /// is `None` again). The lock file stays.
    fn delete(&self) -> Result<bool> {
        let deleted = self.store.delete().map_err(|e| self.fail("delete", e))?;
        self.marker.delete()?;
        Ok(deleted)
    }

    /// The marker's change token; without a marker, the store's
    /// [`unmarked_token`](SecretStore::unmarked_token), `None` when there is no secret.
    fn version(&self) -> Result<Option<ChangeToken>> {
        if let Some(token) = self.marker.version()? {
            return Ok(Some(token));
        }
        self.store
            .unmarked_token()
            .map_err(|e| self.fail("look up", e))
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        self.marker.lock(wait)
    }
}

/// The cache name of `cache_path`, its file name, as a string: the secure stores name
/// their items with it, and their attributes are strings (`store` says which, for the
/// message).
///
/// A path without a file name, or one that is not UTF-8: [`InvalidName`](ErrorKind::InvalidName).
pub(crate) fn utf8_cache_name<'a>(cache_path: &'a Path, store: &str) -> Result<&'a str> {
    cache_path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidName,
                format!(
                    "the cache name in {} is missing or not UTF-8; {store} attributes are strings",
                    cache_path.display()
                ),
            )
        })
}

/// A name or value unique to one validation probe (this process, a random number), so
/// that a probe never names a cache's item and concurrent probes do not collide.
pub(crate) fn probe_name() -> String {
    format!(
        "identity-cache-persistence validation {}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    )
}

/// The validation probe for a store bound to a separate slot (never the cache's item):
/// stores a unique value, reads it back and deletes it, as MSAL's `verifyPersistence`.
///
/// - Usable: `Ok(())`, and the probe item is gone.
/// - A failure of the store: its error, with the kind of its [`StoreFailure`] (a locked
///   Keychain: [`AccessDenied`](ErrorKind::AccessDenied)).
/// - The value reads back differently or not at all: [`Other`](ErrorKind::Other).
///
/// The item is deleted whether or not reading it back worked.
pub fn validate_store(store: &dyn SecretStore) -> Result<()> {
    let value = probe_name();
    let fail = |action: &str, err: StoreError| {
        err.into_error(|| {
            format!(
                "the validation probe could not {action} {}",
                store.location()
            )
        })
    };
    store.set(value.as_bytes()).map_err(|e| fail("store", e))?;
    let read = store.get();
    // Deleted whatever the read gave: the probe leaves nothing behind.
    let removed = store.delete();
    match read.map_err(|e| fail("read back", e))? {
        Some(found) if found == value.as_bytes() => {}
        Some(_) => {
            return Err(Error::new(
                ErrorKind::Other,
                format!(
                    "the validation probe read back different data from {}",
                    store.location()
                ),
            ));
        }
        None => {
            return Err(Error::new(
                ErrorKind::Other,
                format!(
                    "the validation probe stored {} but then did not find it",
                    store.location()
                ),
            ));
        }
    }
    removed.map(|_| ()).map_err(|e| fail("delete", e))
}

#[cfg(test)]
mod tests {
    use super::probe_name;
    use crate::platform::SHARED_KEYCHAIN_ACCOUNT;

    #[test]
    fn probe_names_are_unique_and_not_a_cache_account() {
        let (a, b) = (probe_name(), probe_name());
        assert_ne!(a, b);
        assert_ne!(a, SHARED_KEYCHAIN_ACCOUNT);
    }
}
