//! Which Keychain item a cache is, and what Keychain status codes mean: pure data, so it
//! is compiled and tested on every platform. The Keychain calls are in `keychain.rs`.

use std::path::Path;

use super::secret_store::{StoreError, StoreFailure};
use crate::error::{Error, ErrorKind, Result};

/// The service (`kSecAttrService`) of the token cache item of every Azure SDK.
pub const KEYCHAIN_SERVICE: &str = "Microsoft.Developer.IdentityService";

/// The account (`kSecAttrAccount`) of the JS and Python SDKs, the same for every cache name.
pub const SHARED_KEYCHAIN_ACCOUNT: &str = "MSALCache";

/// The account of the Keychain generic password holding a cache, that is, which SDK's
/// item to share. The service is always [`KEYCHAIN_SERVICE`].
///
/// | choice | account | shares the item with | one item per cache name |
/// |---|---|---|---|
/// | [`Shared`](Self::Shared) (default) | `MSALCache` | JS `@azure/identity-cache-persistence`, Python `azure-identity` | no |
/// | [`CacheName`](Self::CacheName) | the cache name, e.g. `msal.cache.nocae` | .NET `Azure.Identity` | yes |
///
/// `Shared` is the default because the options mirror the JS SDK's, and with it the item,
/// the marker file (`~/.IdentityService/<name>`) and the lock file are all the ones the
/// JS and Python SDKs use, so a cache is fully shared with them: same blob, changes seen,
/// writes excluded. The price is theirs too: every cache name is the same item, so two
/// caches of different names (such as `.cae` and `.nocae`) overwrite each other while
/// holding different lock files. Choose `CacheName` to keep names apart; it shares the
/// item with .NET, whose marker and lock files are under
/// `~/Library/Application Support/.IdentityService` (.NET 8 and later), so point the cache
/// directory there to see .NET's saves and share its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeychainAccount {
    /// `MSALCache` for every cache name, as the JS and Python SDKs write.
    #[default]
    Shared,
    /// The cache name, as .NET `Azure.Identity` writes (`WithMacKeyChain(service, name)`).
    CacheName,
}

impl KeychainAccount {
    /// The account for the cache named `cache_name`.
    pub fn account(self, cache_name: &str) -> String {
        match self {
            KeychainAccount::Shared => SHARED_KEYCHAIN_ACCOUNT.to_owned(),
            KeychainAccount::CacheName => cache_name.to_owned(),
        }
    }

    /// The account for the cache at `cache_path` (its file name is the cache name).
    ///
    /// A path without a file name, or one that is not UTF-8 (Keychain attributes are
    /// strings): [`InvalidName`](ErrorKind::InvalidName).
    pub fn account_for_path(self, cache_path: &Path) -> Result<String> {
        let name = cache_path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidName,
                    format!(
                        "the cache name in {} is missing or not UTF-8; Keychain attributes are strings",
                        cache_path.display()
                    ),
                )
            })?;
        Ok(self.account(name))
    }
}

#[cfg_attr(
    not(all(target_os = "macos", feature = "keychain")),
    allow(dead_code, reason = "used by keychain.rs, on macOS")
)]
/// An account for a validation probe item: unique to the probe, so that it never is a
/// cache's item and concurrent probes do not collide.
pub fn validation_account() -> String {
    format!(
        "identity-cache-persistence validation {}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    )
}

/// What a Keychain `OSStatus` (Security/SecBase.h) means for the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeychainStatus {
    /// `errSecItemNotFound`: no such item; a load gives `None`, a delete `false`.
    NotFound,
    /// A failure of this kind.
    Failed(StoreFailure),
}

/// `errSecDiskFull`: the disk is full.
pub const ERR_SEC_DISK_FULL: i32 = -34;
/// `errSecWrPerm`: write permission denied.
pub const ERR_SEC_WR_PERM: i32 = -61;
/// `errSecUserCanceled`: the user dismissed a prompt.
pub const ERR_SEC_USER_CANCELED: i32 = -128;
/// `errSecNotAvailable`: no keychain is available.
pub const ERR_SEC_NOT_AVAILABLE: i32 = -25291;
/// `errSecReadOnly`: the keychain is read-only.
pub const ERR_SEC_READ_ONLY: i32 = -25292;
/// `errSecAuthFailed`: the user name or passphrase was wrong, or access was refused.
pub const ERR_SEC_AUTH_FAILED: i32 = -25293;
/// `errSecNoSuchKeychain`: the keychain does not exist.
pub const ERR_SEC_NO_SUCH_KEYCHAIN: i32 = -25294;
/// `errSecItemNotFound`: no such item.
pub const ERR_SEC_ITEM_NOT_FOUND: i32 = -25300;
/// `errSecDataTooLarge`: the data is too large.
pub const ERR_SEC_DATA_TOO_LARGE: i32 = -25302;
/// `errSecNoDefaultKeychain`: there is no default keychain.
pub const ERR_SEC_NO_DEFAULT_KEYCHAIN: i32 = -25307;
/// `errSecInteractionNotAllowed`: a prompt was needed (a locked keychain, an access list
/// that asks) and none may be shown, e.g. over SSH.
pub const ERR_SEC_INTERACTION_NOT_ALLOWED: i32 = -25308;
/// `errSecInteractionRequired`: as above, interaction was required.
pub const ERR_SEC_INTERACTION_REQUIRED: i32 = -25315;
/// `errSecMissingEntitlement`: the process lacks the entitlement for the keychain.
pub const ERR_SEC_MISSING_ENTITLEMENT: i32 = -34018;
/// `errSecQuotaExceeded`: a quota was exceeded.
pub const ERR_SEC_QUOTA_EXCEEDED: i32 = -67596;

impl KeychainStatus {
    /// The meaning of a failed call's status `code`.
    pub fn of(code: i32) -> KeychainStatus {
        KeychainStatus::Failed(match code {
            ERR_SEC_ITEM_NOT_FOUND => return KeychainStatus::NotFound,
            ERR_SEC_INTERACTION_NOT_ALLOWED | ERR_SEC_INTERACTION_REQUIRED => StoreFailure::Locked,
            ERR_SEC_USER_CANCELED
            | ERR_SEC_AUTH_FAILED
            | ERR_SEC_READ_ONLY
            | ERR_SEC_WR_PERM
            | ERR_SEC_MISSING_ENTITLEMENT => StoreFailure::Denied,
            ERR_SEC_NOT_AVAILABLE | ERR_SEC_NO_SUCH_KEYCHAIN | ERR_SEC_NO_DEFAULT_KEYCHAIN => {
                StoreFailure::Unavailable
            }
            ERR_SEC_DATA_TOO_LARGE => StoreFailure::TooLarge,
            ERR_SEC_DISK_FULL | ERR_SEC_QUOTA_EXCEEDED => StoreFailure::Full,
            _ => StoreFailure::Other,
        })
    }
}

#[cfg_attr(
    not(all(target_os = "macos", feature = "keychain")),
    allow(dead_code, reason = "used by keychain.rs, on macOS")
)]
/// Splits a Keychain call's result into found, not found ([`KeychainStatus::NotFound`])
/// and a [`StoreError`] of the failure's kind, with the call's error as its source.
/// `code` reads the `OSStatus` of an error.
pub fn found<T, E>(result: Result<T, E>, code: impl Fn(&E) -> i32) -> Result<Option<T>, StoreError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) => match KeychainStatus::of(code(&err)) {
            KeychainStatus::NotFound => Ok(None),
            KeychainStatus::Failed(failure) => Err(StoreError::new(failure, err)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts() {
        assert_eq!(KeychainAccount::default(), KeychainAccount::Shared);
        assert_eq!(
            KeychainAccount::Shared.account("msal.cache.nocae"),
            "MSALCache"
        );
        assert_eq!(
            KeychainAccount::CacheName.account("msal.cache.nocae"),
            "msal.cache.nocae"
        );
        assert_eq!(
            KeychainAccount::CacheName
                .account_for_path(Path::new("/home/u/.IdentityService/msal.cache.cae"))
                .expect("a name"),
            "msal.cache.cae"
        );
        let err = KeychainAccount::Shared
            .account_for_path(Path::new("/"))
            .expect_err("no file name");
        assert_eq!(err.kind(), ErrorKind::InvalidName);
    }

    #[test]
    fn validation_accounts_are_unique_and_not_a_cache_account() {
        let (a, b) = (validation_account(), validation_account());
        assert_ne!(a, b);
        assert_ne!(a, SHARED_KEYCHAIN_ACCOUNT);
    }

    #[test]
    fn status_codes() {
        use KeychainStatus::{Failed, NotFound};
        assert_eq!(KeychainStatus::of(-25300), NotFound);
        assert_eq!(KeychainStatus::of(-25308), Failed(StoreFailure::Locked));
        assert_eq!(KeychainStatus::of(-25315), Failed(StoreFailure::Locked));
        assert_eq!(KeychainStatus::of(-25293), Failed(StoreFailure::Denied));
        assert_eq!(KeychainStatus::of(-128), Failed(StoreFailure::Denied));
        assert_eq!(KeychainStatus::of(-34018), Failed(StoreFailure::Denied));
        assert_eq!(
            KeychainStatus::of(-25307),
            Failed(StoreFailure::Unavailable)
        );
        assert_eq!(
            KeychainStatus::of(-25291),
            Failed(StoreFailure::Unavailable)
        );
        assert_eq!(KeychainStatus::of(-25302), Failed(StoreFailure::TooLarge));
        assert_eq!(KeychainStatus::of(-34), Failed(StoreFailure::Full));
        assert_eq!(KeychainStatus::of(-67596), Failed(StoreFailure::Full));
        assert_eq!(KeychainStatus::of(-61), Failed(StoreFailure::Denied));
        assert_eq!(KeychainStatus::of(-50), Failed(StoreFailure::Other));
        assert_eq!(
            StoreFailure::Locked.kind(),
            ErrorKind::AccessDenied,
            "a locked keychain is access denied"
        );
    }

    #[test]
    fn results_split_into_found_missing_and_failures() {
        #[derive(Debug)]
        struct Status(i32);
        impl std::fmt::Display for Status {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "status {}", self.0)
            }
        }
        impl std::error::Error for Status {}
        let code = |s: &Status| s.0;
        assert_eq!(found(Ok::<_, Status>(7), code).expect("ok"), Some(7));
        assert_eq!(found(Err::<u8, _>(Status(-25300)), code).expect("ok"), None);
        let err = found(Err::<u8, _>(Status(-25308)), code).expect_err("locked");
        assert_eq!(err.failure(), StoreFailure::Locked);
        assert_eq!(
            std::error::Error::source(&err).map(ToString::to_string),
            Some("status -25308".to_owned())
        );
    }
}
