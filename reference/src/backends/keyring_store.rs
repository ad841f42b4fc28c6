//! [`KeyringStore`]: any `keyring-core` credential store (the stores of the `keyring`
//! crate family: the Linux kernel keyring, the Secret Service over dbus or zbus, SQLite,
//! the macOS Keychain, Windows Credential Manager) as a [`SecretStore`], so that a program
//! that has already chosen a keyring store keeps its cache there under the one secure-store
//! composition: the secret in that store, a marker file at the cache path, the MSAL lock.
//!
//! ```no_run
//! use identity_cache_persistence::{CachePersistence, KeyringStore, platform::SecretStorePersistence};
//!
//! # fn store() -> std::sync::Arc<keyring_core::CredentialStore> { unimplemented!() }
//! let store = store(); // e.g. linux_keyutils_keyring_store::Store::new()?
//! KeyringStore::validate(&store, "my-app")?;
//! let home = std::env::home_dir().expect("a home directory");
//! let path = home.join(".IdentityService/msal.cache");
//! let cache = SecretStorePersistence::new(
//!     &path,
//!     KeyringStore::new(&store, "my-app", "msal.cache")?.with_max_size(32 * 1024),
//! )?;
//! let blob = cache.load()?;
//! # Ok::<(), identity_cache_persistence::Error>(())
//! ```

use std::{fmt, sync::Arc};

use keyring_core::{CredentialStore, Entry, Error as KeyringError};

use super::platform::{SecretStore, StoreError, StoreFailure, probe_name, validate_store};
use crate::error::{Error, Result};

/// The entry of one service and user in a `keyring-core` credential store.
///
/// - A missing entry ([`NoEntry`](KeyringError::NoEntry)) is "nothing stored".
/// - The store cannot be reached or refuses ([`NoStorageAccess`](KeyringError::NoStorageAccess)):
///   [`AccessDenied`](crate::ErrorKind::AccessDenied); no default store
///   ([`NoDefaultStore`](KeyringError::NoDefaultStore)):
///   [`StorageUnavailable`](crate::ErrorKind::StorageUnavailable); a secret over a store limit
///   ([`TooLong`](KeyringError::TooLong)): [`TooLarge`](crate::ErrorKind::TooLarge); anything
///   else, the store's own failure, [`Other`](crate::ErrorKind::Other).
/// - The size limit is the caller's to declare ([`with_max_size`](Self::with_max_size)):
///   `keyring-core` does not say what a store takes (the kernel keyring's user keys hold
///   32,767 bytes).
#[derive(Clone)]
pub struct KeyringStore {
    entry: Arc<Entry>,
    vendor: String,
    service: String,
    user: String,
    max_size: Option<usize>,
}

impl KeyringStore {
    /// The entry of `service` and `user` in `store`. Touches nothing stored.
    pub fn new(store: &Arc<CredentialStore>, service: &str, user: &str) -> Result<Self> {
        let entry = Entry::new_in_store(store, service, user).map_err(|e| {
            let failure = failure_of(&e);
            Error::with_source(
                failure.kind(),
                format!(
                    "the keyring store {} refused the entry service={service:?} user={user:?}",
                    store.vendor()
                ),
                e,
            )
        })?;
        Ok(KeyringStore {
            entry: Arc::new(entry),
            vendor: store.vendor(),
            service: service.to_owned(),
            user: user.to_owned(),
            max_size: None,
        })
    }

    /// Declares the largest secret the store takes: larger saves fail with
    /// [`TooLarge`](crate::ErrorKind::TooLarge) before the store is asked.
    pub fn with_max_size(self, max: usize) -> Self {
        KeyringStore {
            max_size: Some(max),
            ..self
        }
    }

    /// The validation probe, as MSAL's `verifyPersistence`: stores, reads back and deletes
    /// an entry of `service` with a user unique to the probe, never a cache's.
    pub fn validate(store: &Arc<CredentialStore>, service: &str) -> Result<()> {
        validate_store(&KeyringStore::new(store, service, &probe_name())?)
    }
}

impl fmt::Debug for KeyringStore {
    /// The entry's names; never the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyringStore")
            .field("vendor", &self.vendor)
            .field("service", &self.service)
            .field("user", &self.user)
            .field("max_size", &self.max_size)
            .finish()
    }
}

impl SecretStore for KeyringStore {
    fn backend(&self) -> &str {
        "keyring-core"
    }

    fn location(&self) -> String {
        format!(
            "keyring store {} entry service={:?} user={:?}",
            self.vendor, self.service, self.user
        )
    }

    fn max_size(&self) -> Option<usize> {
        self.max_size
    }

    fn get(&self) -> Result<Option<Vec<u8>>, StoreError> {
        match self.entry.get_secret() {
            Ok(secret) => Ok(Some(secret)),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    fn set(&self, secret: &[u8]) -> Result<(), StoreError> {
        self.entry.set_secret(secret).map_err(store_error)
    }

    fn delete(&self) -> Result<bool, StoreError> {
        match self.entry.delete_credential() {
            Ok(()) => Ok(true),
            Err(KeyringError::NoEntry) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }
}

fn failure_of(err: &KeyringError) -> StoreFailure {
    match err {
        KeyringError::NoStorageAccess(_) => StoreFailure::Denied,
        KeyringError::NoDefaultStore => StoreFailure::Unavailable,
        KeyringError::TooLong(..) => StoreFailure::TooLarge,
        _ => StoreFailure::Other,
    }
}

/// The store's error, minus what it may carry of the secret: `BadEncoding` and
/// `BadDataFormat` hold the stored bytes, which must reach no message or log.
fn store_error(err: KeyringError) -> StoreError {
    let failure = failure_of(&err);
    match err {
        KeyringError::BadEncoding(_) => StoreError::bare(failure),
        KeyringError::BadDataFormat(_, cause) => StoreError::new(failure, cause),
        err => StoreError::new(failure, err),
    }
}
