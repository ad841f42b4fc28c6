//! Where the cache is stored: one module per kind of storage, each a
//! [`CachePersistence`](crate::CachePersistence).
//!
//! - `file`: [`FilePersistence`](crate::FilePersistence), the blob in a plain file; also
//!   the marker file and the lock of every backend below but Redis.
//! - `platform`: the secure-store composition ([`SecretStorePersistence`](platform::SecretStorePersistence):
//!   a secret in a store, a marker file, the MSAL lock, the probe), the Keychain as such a
//!   store, and the DPAPI-encrypted file.
//! - `secret_service`: the Secret Service item as a store of that composition, and which
//!   item a cache is in each SDK's layout.
//! - `kernel_keyring` (Linux, feature `kernel-keyring`): the blob in an AES-256-GCM JWE
//!   file, its key in the user's persistent kernel keyring; for Linux without a Secret
//!   Service.
//! - `redis` (feature `redis`): the blob and its lock on a Redis server.
//! - `keyring_store` (feature `keyring-core`): any `keyring-core` credential store as a
//!   store of the secure-store composition.

pub(crate) mod file;
#[cfg(all(target_os = "linux", feature = "kernel-keyring"))]
pub(crate) mod kernel_keyring;
#[cfg(feature = "keyring-core")]
pub(crate) mod keyring_store;
pub mod platform;
#[cfg(feature = "redis")]
pub(crate) mod redis;
pub mod secret_service;
