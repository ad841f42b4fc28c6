//! Persistent, cross-process storage for the MSAL token cache of Azure Identity.
//!
//! The [`CachePersistence`] trait is the contract: load, save (whole-blob, atomic), delete,
//! a change token and an exclusive cross-process lock. [`FilePersistence`] implements it
//! with files; [`CachePlugin`] drives any implementation the way MSAL's cache hooks do:
//! lock, reload when the change token moved, save when the cache changed, release.
//!
//! [`TokenCachePersistenceOptions`] mirror `tokenCachePersistenceOptions` of the JS
//! `@azure/identity` package, and [`persistence_for`] picks the storage for them with the
//! Azure SDK defaults (`~/.IdentityService/msal.cache`). On Linux that is the Secret
//! Service (feature `secret-service`, on by default; see [`secret_service`]), in the item
//! layout of the SDK chosen by [`KeyringProfile`]; where no Secret Service is reachable
//! (servers, SSH, containers), a file encrypted under a key in the kernel keyring
//! (feature `kernel-keyring`, on by default; `KernelKeyringPersistence`).
//!
//! ```
//! use identity_cache_persistence::{CachePersistence, TokenCachePersistenceOptions, persistence_for};
//!
//! # let dir = tempfile::tempdir()?;
//! let options = TokenCachePersistenceOptions {
//!     enabled: true,
//!     name: "example".into(),
//!     unsafe_allow_unencrypted_storage: true,
//!     directory: Some(dir.path().to_path_buf()),
//! #   dbus_address: Some(format!("unix:path={}/no-bus", dir.path().display())),
//!     ..Default::default()
//! };
//! let persistence = persistence_for(&options)?.expect("enabled");
//! persistence.save(b"{}")?;
//! assert_eq!(persistence.load()?.as_deref(), Some(&b"{}"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

#[cfg(feature = "azure")]
pub mod azure;
mod backends;
mod cache_plugin;
mod error;
pub mod lock;
mod name;
mod options;
mod persistence;
#[cfg(feature = "token-cache")]
pub mod token_cache;

pub use backends::file::FilePersistence;
#[cfg(all(target_os = "linux", feature = "kernel-keyring"))]
pub use backends::kernel_keyring::KernelKeyringPersistence;
#[cfg(feature = "keyring-core")]
pub use backends::keyring_store::KeyringStore;
#[cfg(feature = "redis")]
pub use backends::redis::RedisPersistence;
pub use backends::{platform, secret_service};
pub use cache_plugin::{CacheAccess, CachePlugin, DetachedAccess};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use name::{MAX_NAME_LEN, cache_name_of_lock, is_lock_guard, lock_path_for, validate_name};
pub use options::{TokenCachePersistenceOptions, default_directory, persistence_for};
pub use persistence::{
    CachePersistence, Capabilities, ChangeToken, Description, HeldLock, LockGuard,
};
#[cfg(all(windows, feature = "dpapi"))]
pub use platform::DpapiPersistence;
pub use platform::KeychainAccount;
#[cfg(all(target_os = "macos", feature = "keychain"))]
pub use platform::KeychainPersistence;
pub use secret_service::KeyringProfile;
#[cfg(all(target_os = "linux", feature = "secret-service"))]
pub use secret_service::SecretServicePersistence;
