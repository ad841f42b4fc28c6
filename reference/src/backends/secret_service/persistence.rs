//! [`SecretServicePersistence`]: the blob in a Secret Service item, a marker file beside
//! it for change detection, and the MSAL lock file: the secure-store composition
//! ([`SecretStorePersistence`]) over one [`SecretServiceItem`].

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    client::{BusAddress, Connector},
    item::SecretServiceItem,
    profile::KeyringProfile,
};
use crate::{
    backends::platform::{
        SecretStorePersistence, forward_persistence, utf8_cache_name, validate_store,
    },
    error::Result,
};

/// The token cache in a Secret Service item (gnome-keyring, KWallet, KeePassXC), laid out
/// as one of the Azure SDKs lays it out ([`KeyringProfile`]), so that they share it.
///
/// - **Where**: one item in the default collection, found by the profile's attributes.
///   The Secret Service encrypts it at rest, and the secret crosses the bus encrypted (a
///   Diffie-Hellman session, as libsecret uses).
/// - **Marker**: an empty file at the cache path (0600, its directory 0700), rewritten
///   atomically after every save, as the SDKs touch theirs. Its change token
///   ([`FilePersistence::version`](crate::CachePersistence::version)) is this backend's change
///   token, so checking for changes reads no secret and sends nothing over D-Bus.
/// - **Lock**: [`FileLock`](crate::lock::FileLock) at `<cache path>.lockfile`, shared
///   with the SDKs.
/// - **Connection**: none until the first operation that needs the Secret Service;
///   creating this value, [`version`](crate::CachePersistence::version) while a marker exists,
///   [`lock`](crate::CachePersistence::lock) and [`describe`](crate::CachePersistence::describe) send
///   nothing over D-Bus. Clones share one connection; a broken connection is reopened on
///   the next call.
/// - **Locked keyring**: reported as [`AccessDenied`](crate::ErrorKind::AccessDenied) saying
///   "locked"; this type never asks the Secret Service to unlock, since that pops up a
///   prompt (which without a display fails, and with one blocks the caller).
/// - **Size**: blobs up to [`MAX_SIZE`](super::MAX_SIZE); larger ones fail with
///   [`TooLarge`](crate::ErrorKind::TooLarge) before anything is sent.
#[derive(Debug, Clone)]
pub struct SecretServicePersistence {
    profile: KeyringProfile,
    cache_name: String,
    inner: SecretStorePersistence<SecretServiceItem>,
}

impl SecretServicePersistence {
    /// The cache at `cache_path` (its marker file; the blob is in the keyring), stored in
    /// the item `profile` gives the cache name, the path's file name. Sends nothing
    /// over D-Bus.
    ///
    /// A path without a file name, or whose file name is not UTF-8 (Secret Service
    /// attributes and labels are strings): [`InvalidName`](crate::ErrorKind::InvalidName).
    ///
    /// ```no_run
    /// use identity_cache_persistence::{CachePersistence, KeyringProfile, SecretServicePersistence};
    ///
    /// let home = std::env::home_dir().expect("a home directory");
    /// let cache = SecretServicePersistence::new(
    ///     home.join(".IdentityService/msal.cache.nocae"),
    ///     KeyringProfile::AzureIdentityPython,
    /// )?;
    /// cache.validate()?; // writes, reads and deletes a separate item
    /// let blob = cache.load()?;
    /// # Ok::<(), identity_cache_persistence::Error>(())
    /// ```
    pub fn new(cache_path: impl Into<PathBuf>, profile: KeyringProfile) -> Result<Self> {
        let cache_path = cache_path.into();
        let cache_name = utf8_cache_name(&cache_path, "Secret Service")?.to_owned();
        let connector = Arc::new(Connector::new(BusAddress::Session));
        let item = SecretServiceItem::new(connector, profile, profile.layout(&cache_name));
        Ok(SecretServicePersistence {
            profile,
            cache_name,
            inner: SecretStorePersistence::new(cache_path, item)?,
        })
    }

    /// Connects to the bus at `address` (a D-Bus address such as
    /// `unix:path=/run/user/1000/bus` or `tcp:host=127.0.0.1,port=4000`) instead of the
    /// session bus named by the environment. For tests and containers, which need not
    /// change the process environment.
    pub fn with_bus_address(self, address: impl Into<String>) -> Self {
        let connector = Arc::new(Connector::new(BusAddress::Explicit(address.into())));
        let item = self.inner.store().on(connector);
        SecretServicePersistence {
            inner: self.inner.with_store(item),
            ..self
        }
    }

    /// The item layout this persistence uses.
    pub fn profile(&self) -> KeyringProfile {
        self.profile
    }

    /// The cache path: where the marker file is, and the name of the lock file.
    pub fn cache_path(&self) -> &Path {
        self.inner.cache_path()
    }

    /// The validation probe: writes, reads back and deletes a separate item, never the
    /// cache, and says why the Secret Service cannot be used.
    ///
    /// The probe item has the profile's schema and attribute names with values unique
    /// to this probe, so no SDK's lookup of a real cache finds it, and concurrent probes
    /// do not collide. It is deleted whether or not reading it back worked.
    ///
    /// - Usable: `Ok(())`.
    /// - No D-Bus session bus (none running, a bad address):
    ///   [`StorageUnavailable`](crate::ErrorKind::StorageUnavailable), "no D-Bus session bus: …".
    /// - A bus without a Secret Service:
    ///   [`StorageUnavailable`](crate::ErrorKind::StorageUnavailable),
    ///   "no Secret Service (org.freedesktop.secrets) on the bus …".
    /// - The default collection is locked: [`AccessDenied`](crate::ErrorKind::AccessDenied),
    ///   "… is locked …".
    /// - Access refused: [`AccessDenied`](crate::ErrorKind::AccessDenied), "permission denied …".
    /// - The item was stored but reads back differently or not at all:
    ///   [`Other`](crate::ErrorKind::Other).
    pub fn validate(&self) -> Result<()> {
        let token = format!(
            "persistence validation {}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        );
        validate_store(&SecretServiceItem::new(
            Arc::clone(self.inner.store().connector()),
            self.profile,
            self.profile.validation_layout(&self.cache_name, &token),
        ))
    }
}

forward_persistence!(SecretServicePersistence, inner);
