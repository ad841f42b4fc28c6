//! The secure backends of macOS and Windows, and the platform-independent logic they are
//! built on.
//!
//! The OS calls are kept to two small files behind `cfg`, because they can only be
//! compiled on their own OS:
//! - `keychain.rs` (macOS, feature `keychain`): `KeychainPersistence`, a Keychain
//!   generic password through `security-framework`.
//! - `dpapi.rs` (Windows, feature `dpapi`): `DpapiPersistence`, a DPAPI-encrypted file
//!   through `windows-sys`.
//!
//! Everything else is here for every platform and tested everywhere:
//! [`SecretStorePersistence`] (a secret in a store, a marker file, the MSAL lock) over the
//! [`SecretStore`] trait the Keychain implements; [`EncryptedFilePersistence`] (a
//! ciphertext written atomically, the MSAL lock) over the [`Cipher`] trait DPAPI
//! implements; and which Keychain item a cache is ([`KeychainAccount`]) and what Keychain
//! status codes mean.

/// Implements [`CachePersistence`](crate::CachePersistence) for a newtype by forwarding
/// every method to its field `$field`. Calls are fully qualified, so the expansion site
/// needs no imports.
#[cfg_attr(
    not(any(
        all(target_os = "macos", feature = "keychain"),
        all(windows, feature = "dpapi"),
        all(target_os = "linux", feature = "secret-service")
    )),
    allow(unused_macros)
)]
macro_rules! forward_persistence {
    ($outer:ty, $field:ident) => {
        impl $crate::persistence::CachePersistence for $outer {
            fn describe(&self) -> $crate::persistence::Description {
                $crate::persistence::CachePersistence::describe(&self.$field)
            }
            fn load(&self) -> $crate::error::Result<Option<Vec<u8>>> {
                $crate::persistence::CachePersistence::load(&self.$field)
            }
            fn save(&self, data: &[u8]) -> $crate::error::Result<()> {
                $crate::persistence::CachePersistence::save(&self.$field, data)
            }
            fn delete(&self) -> $crate::error::Result<bool> {
                $crate::persistence::CachePersistence::delete(&self.$field)
            }
            fn version(&self) -> $crate::error::Result<Option<$crate::persistence::ChangeToken>> {
                $crate::persistence::CachePersistence::version(&self.$field)
            }
            fn lock(
                &self,
                wait: std::time::Duration,
            ) -> $crate::error::Result<$crate::persistence::LockGuard> {
                $crate::persistence::CachePersistence::lock(&self.$field, wait)
            }
        }
    };
}

// By path, so that the Secret Service backend (a sibling module) can use it too.
#[cfg(all(target_os = "linux", feature = "secret-service"))]
pub(crate) use forward_persistence;

mod encrypted_file;
mod keychain_item;
#[cfg(any(test, all(target_os = "macos", feature = "keychain")))]
mod keychain_status;
mod secret_store;

#[cfg(all(windows, feature = "dpapi"))]
mod dpapi;
#[cfg(all(target_os = "macos", feature = "keychain"))]
mod keychain;

pub use encrypted_file::{Cipher, EncryptedFilePersistence};
pub use keychain_item::{KEYCHAIN_SERVICE, KeychainAccount, SHARED_KEYCHAIN_ACCOUNT};
pub use secret_store::{
    SecretStore, SecretStorePersistence, StoreError, StoreFailure, validate_store,
};
pub(crate) use secret_store::{probe_name, utf8_cache_name};

#[cfg(all(windows, feature = "dpapi"))]
pub use dpapi::{Dpapi, DpapiPersistence};
#[cfg(all(target_os = "macos", feature = "keychain"))]
pub use keychain::{Keychain, KeychainPersistence};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::BoxError;

    /// A cipher that is not one: enough to check the forwarding.
    #[derive(Debug)]
    struct Plain;

    impl Cipher for Plain {
        fn backend(&self) -> &str {
            "plain"
        }
        fn scheme(&self) -> String {
            "none".into()
        }
        fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, BoxError> {
            Ok(plaintext.to_vec())
        }
        fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, BoxError> {
            Ok(ciphertext.to_vec())
        }
    }

    /// Built the way the macOS and Windows newtypes are.
    #[derive(Debug)]
    struct Wrapped {
        inner: EncryptedFilePersistence<Plain>,
    }

    forward_persistence!(Wrapped, inner);

    #[test]
    fn forwarding_reaches_every_method() {
        use crate::CachePersistence;

        let dir = tempfile::tempdir().expect("temp dir");
        let w = Wrapped {
            inner: EncryptedFilePersistence::new(dir.path().join("c"), Plain).expect("path"),
        };
        assert_eq!(w.describe().backend, "plain");
        assert_eq!(w.load().expect("load"), None);
        assert_eq!(w.version().expect("version"), None);
        w.save(b"blob").expect("save");
        assert_eq!(w.load().expect("load").as_deref(), Some(&b"blob"[..]));
        assert!(w.version().expect("version").is_some());
        w.lock(Duration::from_secs(5))
            .expect("lock")
            .release()
            .expect("release");
        assert!(w.delete().expect("delete"));
    }
}
