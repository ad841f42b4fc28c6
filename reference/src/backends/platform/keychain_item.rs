//! Which Keychain item a cache is: pure data, so it is compiled and tested on every
//! platform. What Keychain status codes mean is in `keychain_status.rs`, the Keychain
//! calls in `keychain.rs`.

use std::path::Path;

use super::utf8_cache_name;
use crate::error::Result;

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
    /// strings): [`InvalidName`](crate::ErrorKind::InvalidName).
    pub fn account_for_path(self, cache_path: &Path) -> Result<String> {
        let name = utf8_cache_name(cache_path, "Keychain")?;
        Ok(self.account(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

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
}
