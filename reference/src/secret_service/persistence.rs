//! [`SecretServicePersistence`]: the blob in a Secret Service item, a marker file beside
//! it for change detection, and the MSAL lock file.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use super::{
    client::{BusAddress, Connector},
    payload::{self, MAX_SIZE},
    probe,
    profile::{ItemLayout, KeyringProfile},
};
use crate::{
    error::{Error, ErrorKind, Result},
    file::FilePersistence,
    persistence::{CachePersistence, Capabilities, ChangeToken, Description, LockGuard},
};

/// The token cache in a Secret Service item (gnome-keyring, KWallet, KeePassXC), laid out
/// as one of the Azure SDKs lays it out ([`KeyringProfile`]), so that they share it.
///
/// - **Where**: one item in the default collection, found by the profile's attributes.
///   The Secret Service encrypts it at rest, and the secret crosses the bus encrypted (a
///   Diffie-Hellman session, as libsecret uses).
/// - **Marker**: an empty file at the cache path (0600, its directory 0700), rewritten
///   atomically after every save, as the SDKs touch theirs. Its change token
///   ([`FilePersistence::version`](CachePersistence::version)) is this backend's change
///   token, so checking for changes reads no secret and sends nothing over D-Bus.
/// - **Lock**: [`FileLock`](crate::lock::FileLock) at `<cache path>.lockfile`, shared
///   with the SDKs.
/// - **Connection**: none until the first operation that needs the Secret Service;
///   creating this value, [`version`](CachePersistence::version) while a marker exists,
///   [`lock`](CachePersistence::lock) and [`describe`](CachePersistence::describe) send
///   nothing over D-Bus. Clones share one connection; a broken connection is reopened on
///   the next call.
/// - **Locked keyring**: reported as [`AccessDenied`](ErrorKind::AccessDenied) saying
///   "locked"; this type never asks the Secret Service to unlock, since that pops up a
///   prompt (which without a display fails, and with one blocks the caller).
/// - **Size**: blobs up to [`MAX_SIZE`]; larger ones fail with
///   [`TooLarge`](ErrorKind::TooLarge) before anything is sent.
#[derive(Debug, Clone)]
pub struct SecretServicePersistence {
    profile: KeyringProfile,
    cache_name: String,
    layout: ItemLayout,
    marker: FilePersistence,
    connector: Arc<Connector>,
}

impl SecretServicePersistence {
    /// The cache at `cache_path` (its marker file; the blob is in the keyring), stored in
    /// the item `profile` gives the cache name, the path's file name. Sends nothing
    /// over D-Bus.
    ///
    /// A path without a file name, or whose file name is not UTF-8 (Secret Service
    /// attributes and labels are strings): [`InvalidName`](ErrorKind::InvalidName).
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
        let marker = FilePersistence::new(cache_path)?;
        let cache_name = marker
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidName,
                    format!(
                        "the cache name in {} is not UTF-8; Secret Service attributes are strings",
                        marker.path().display()
                    ),
                )
            })?
            .to_owned();
        Ok(SecretServicePersistence {
            profile,
            layout: profile.layout(&cache_name),
            cache_name,
            marker,
            connector: Arc::new(Connector::new(BusAddress::Session)),
        })
    }

    /// Connects to the bus at `address` (a D-Bus address such as
    /// `unix:path=/run/user/1000/bus` or `tcp:host=127.0.0.1,port=4000`) instead of the
    /// session bus named by the environment. For tests and containers, which need not
    /// change the process environment.
    pub fn with_bus_address(mut self, address: impl Into<String>) -> Self {
        self.connector = Arc::new(Connector::new(BusAddress::Explicit(address.into())));
        self
    }

    /// The item layout this persistence uses.
    pub fn profile(&self) -> KeyringProfile {
        self.profile
    }

    /// The cache path: where the marker file is, and the name of the lock file.
    pub fn cache_path(&self) -> &Path {
        self.marker.path()
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
    ///   [`StorageUnavailable`](ErrorKind::StorageUnavailable), "no D-Bus session bus: …".
    /// - A bus without a Secret Service:
    ///   [`StorageUnavailable`](ErrorKind::StorageUnavailable),
    ///   "no Secret Service (org.freedesktop.secrets) on the bus …".
    /// - The default collection is locked: [`AccessDenied`](ErrorKind::AccessDenied),
    ///   "… is locked …".
    /// - Access refused: [`AccessDenied`](ErrorKind::AccessDenied), "permission denied …".
    /// - The item was stored but reads back differently or not at all:
    ///   [`Other`](ErrorKind::Other).
    pub fn validate(&self) -> Result<()> {
        probe::validate(&self.connector, self.profile, &self.cache_name)
    }

    fn location(&self) -> String {
        format!("Secret Service item {}", self.layout.describe())
    }
}

impl CachePersistence for SecretServicePersistence {
    fn describe(&self) -> Description {
        Description::new(
            "secret-service",
            format!(
                "{} on {}, profile {}, default collection; marker {}",
                self.location(),
                self.connector.address(),
                self.profile,
                self.marker.path().display()
            ),
            Capabilities::full_plaintext()
                .encrypts_at_rest(true)
                .max_size(Some(MAX_SIZE)),
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        let secret = self
            .connector
            .with("read the token cache from the Secret Service", |client| {
                client.read(&self.layout)
            })?;
        secret
            .map(|s| payload::decode(self.layout.encoding, s, &self.location()))
            .transpose()
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        if data.len() > MAX_SIZE {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "the token cache is {} bytes; the Secret Service backend stores at most {MAX_SIZE}",
                    data.len()
                ),
            ));
        }
        let secret = payload::encode(self.layout.encoding, data);
        self.connector
            .with("store the token cache in the Secret Service", |client| {
                client.store(&self.layout.label, &self.layout.attributes, &secret)
            })?;
        // After the item, so that a peer that sees the marker change finds the new blob.
        self.marker.save(b"")
    }

    fn delete(&self) -> Result<bool> {
        let deleted = self
            .connector
            .with("delete the token cache from the Secret Service", |client| {
                client.remove(&self.layout)
            })?;
        self.marker.delete()?;
        Ok(deleted)
    }

    /// The marker file's change token. Without a marker (an item written by a tool that
    /// keeps none), one lookup, which reads no secret, tells whether an item exists.
    fn version(&self) -> Result<Option<ChangeToken>> {
        if let Some(token) = self.marker.version()? {
            return Ok(Some(token));
        }
        let found = self
            .connector
            .with("look up the token cache in the Secret Service", |client| {
                client.find(&self.layout.lookup)
            })?;
        Ok(found
            .first()
            .map(|item| ChangeToken::new(format!("unmarked:{}", item.path.as_str()))))
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        self.marker.lock(wait)
    }
}
