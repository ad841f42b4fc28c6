//! The token cache in the Secret Service (gnome-keyring, KWallet, KeePassXC) over D-Bus.
//!
//! [`KeyringProfile`] (pure data, every platform) says which item a cache is, in the
//! layout of the SDK to share it with. [`SecretServicePersistence`] (Linux, feature
//! `secret-service`) stores the blob there.
//!
//! It talks to the Secret Service with the pure-Rust `secret-service` crate (zbus) rather
//! than keyring-core's Secret Service store: that store always adds `service` and
//! `username` attributes to the items it creates, so it cannot write the exact attribute
//! sets the other SDKs look up, and it only reads the session bus from the environment,
//! where tests and containers need an explicit address. No C library (libsecret,
//! libdbus) is needed to build or run.

mod profile;

pub use profile::{KeyringProfile, SCHEMA_ATTRIBUTE};

#[cfg(all(target_os = "linux", feature = "secret-service"))]
mod client;
#[cfg(all(target_os = "linux", feature = "secret-service"))]
mod errors;
#[cfg(all(target_os = "linux", feature = "secret-service"))]
mod inspect;
#[cfg(all(target_os = "linux", feature = "secret-service"))]
mod item;
#[cfg(all(target_os = "linux", feature = "secret-service"))]
mod payload;
#[cfg(all(target_os = "linux", feature = "secret-service"))]
mod persistence;

#[cfg(all(target_os = "linux", feature = "secret-service"))]
pub use inspect::{CacheItem, ServiceProblem, cache_items, check_service};
#[cfg(all(target_os = "linux", feature = "secret-service"))]
pub use payload::MAX_SIZE;
#[cfg(all(target_os = "linux", feature = "secret-service"))]
pub use persistence::SecretServicePersistence;
