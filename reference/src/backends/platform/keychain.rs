//! The macOS Keychain as a [`SecretStore`], through `security-framework`'s generic
//! password functions (`SecItemAdd`/`SecItemUpdate`/`SecItemCopyMatching`/
//! `SecItemDelete` with `kSecClassGenericPassword`, service and account, in the default
//! keychain, where the other SDKs' legacy `SecKeychain*GenericPassword` calls keep
//! theirs). Everything else is platform-independent: see `secret_store.rs` and
//! `keychain_item.rs`.

use std::path::{Path, PathBuf};

use security_framework::{
    base::Error as KeychainError,
    passwords::{self, PasswordOptions},
};

use super::{
    keychain_item::{KEYCHAIN_SERVICE, KeychainAccount},
    keychain_status::found,
    secret_store::{
        SecretStore, SecretStorePersistence, StoreError, StoreFailure, probe_name, validate_store,
    },
};
use crate::error::Result;

/// One Keychain generic password, named by service and account.
///
/// Saving an existing item updates its data in place (`SecItemUpdate`), so the item keeps
/// its access list and the user is not asked again; it is never deleted and re-added.
/// When the item's access list asks for the user's consent, macOS shows its prompt, as it
/// does for the other SDKs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keychain {
    service: String,
    account: String,
}

impl Keychain {
    /// The generic password of `service` and `account`. Touches nothing.
    pub fn new(service: impl Into<String>, account: impl Into<String>) -> Self {
        Keychain {
            service: service.into(),
            account: account.into(),
        }
    }

    /// The service (`kSecAttrService`).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The account (`kSecAttrAccount`).
    pub fn account(&self) -> &str {
        &self.account
    }
}

/// The `OSStatus` of a Keychain error.
fn code(err: &KeychainError) -> i32 {
    err.code()
}

impl SecretStore for Keychain {
    fn backend(&self) -> &str {
        "keychain"
    }

    fn location(&self) -> String {
        format!(
            "Keychain generic password service={:?} account={:?}",
            self.service, self.account
        )
    }

    fn get(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let query = PasswordOptions::new_generic_password(&self.service, &self.account);
        found(passwords::generic_password(query), code)
    }

    fn set(&self, secret: &[u8]) -> Result<(), StoreError> {
        // Adds the item, or on errSecDuplicateItem updates the existing one in place.
        found(
            passwords::set_generic_password(&self.service, &self.account, secret),
            code,
        )?
        .ok_or_else(|| StoreError::bare(StoreFailure::Other))
    }

    fn delete(&self) -> Result<bool, StoreError> {
        found(
            passwords::delete_generic_password(&self.service, &self.account),
            code,
        )
        .map(|deleted| deleted.is_some())
    }
}

/// The token cache in the macOS Keychain: a generic password with service
/// `Microsoft.Developer.IdentityService` and the account [`KeychainAccount`] chooses, a
/// marker file at the cache path touched after every save, and the MSAL lock file at
/// `<cache path>.lockfile`. See [`SecretStorePersistence`] for the contract.
#[derive(Debug, Clone)]
pub struct KeychainPersistence {
    inner: SecretStorePersistence<Keychain>,
}

impl KeychainPersistence {
    /// The cache whose marker file is `cache_path` (its file name is the cache name), in
    /// the item of `account`. Touches nothing.
    ///
    /// A path without a file name, or a name that is not UTF-8:
    /// [`InvalidName`](crate::ErrorKind::InvalidName).
    pub fn new(cache_path: impl Into<PathBuf>, account: KeychainAccount) -> Result<Self> {
        let cache_path = cache_path.into();
        let account = account.account_for_path(&cache_path)?;
        let keychain = Keychain::new(KEYCHAIN_SERVICE, account);
        Ok(KeychainPersistence {
            inner: SecretStorePersistence::new(cache_path, keychain)?,
        })
    }

    /// The Keychain item.
    pub fn keychain(&self) -> &Keychain {
        self.inner.store()
    }

    /// The cache path: the marker file, and the name of the lock file.
    pub fn cache_path(&self) -> &Path {
        self.inner.cache_path()
    }

    /// The validation probe: stores, reads back and deletes a separate item (same
    /// service, an account unique to the probe), never the cache's. A locked keychain
    /// that may not prompt: [`AccessDenied`](crate::ErrorKind::AccessDenied); no
    /// keychain: [`StorageUnavailable`](crate::ErrorKind::StorageUnavailable). See
    /// [`validate_store`].
    pub fn validate(&self) -> Result<()> {
        validate_store(&Keychain::new(KEYCHAIN_SERVICE, probe_name()))
    }
}

forward_persistence!(KeychainPersistence, inner);
