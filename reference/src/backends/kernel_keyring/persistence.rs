//! The persistence: the file plugin's atomic file holding a JWE, the key from the kernel.

use std::{
    fs::File,
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    jwe::{self, JweError},
    key::{FoundKey, Lookup, Ring},
};
use crate::{
    backends::{
        file::{FilePersistence, create_private_dir, directory_of},
        platform::{probe_name, utf8_cache_name},
    },
    error::{Error, ErrorKind, Result},
    persistence::{CachePersistence, Capabilities, ChangeToken, Description, LockGuard},
};

/// The token cache as a JWE (AES-256-GCM) in one file, its key in the user's persistent
/// kernel keyring, with the MSAL lock file beside it.
///
/// - **Key**: a kernel `user` key described by the cache name (the file name of the cache
///   path), in the persistent keyring, or the user keyring where there is none. Created
///   by the first save that finds none. It lives in kernel memory only: a reboot loses it.
/// - **File format**: a compact JWE, `{"alg":"dir","enc":"A256GCM","kid":"<key serial>"}`
///   (see `jwe.rs`). An empty file reads as an empty blob without decrypting.
/// - **Writes**: as [`FilePersistence`]: temporary file (0600) beside the cache file,
///   fsync, rename, so readers and crashes see the old or the new ciphertext.
/// - **Missing key** (reboot, `keyctl unlink`, `keyctl revoke`, expiry), or a file whose
///   `kid` names a key that is no longer there: [`load`](CachePersistence::load) returns
///   `Ok(None)`, an empty cache, and logs a warning; the next save creates a new key and
///   replaces the file. Never a `CorruptData` that would repeat forever.
/// - **Tampered file** (the tag does not verify under the key it names), a file that is
///   not such a JWE, or one of another algorithm (the Go SDK's `A128CBC-HS256`):
///   [`CorruptData`](ErrorKind::CorruptData), and the file is left as it is.
/// - **Delete** removes the file; the key stays (another process may be encrypting
///   under it at that moment; it is 33 bytes of kernel memory).
/// - **Change token and lock**: the file's, as [`FilePersistence`]: `<path>.lockfile`.
///
/// Neither `Debug`, errors nor logs contain the key or the plaintext.
#[derive(Debug, Clone)]
pub struct KernelKeyringPersistence {
    file: FilePersistence,
    description: String,
}

impl KernelKeyringPersistence {
    /// The cache in the file at `cache_path`, its key described by the file's name (as the
    /// Go SDK names it). Touches nothing.
    ///
    /// A path without a file name, or one that is not UTF-8:
    /// [`InvalidName`](ErrorKind::InvalidName).
    pub fn new(cache_path: impl Into<PathBuf>) -> Result<Self> {
        let cache_path = cache_path.into();
        let description = utf8_cache_name(&cache_path, "kernel keyring")?.to_owned();
        Self::with_key_description(cache_path, description)
    }

    /// The cache in the file at `cache_path`, its key described by `description`, for
    /// programs (and tests) that keep caches of one name in several directories apart.
    pub fn with_key_description(
        cache_path: impl Into<PathBuf>,
        description: impl Into<String>,
    ) -> Result<Self> {
        let description = description.into();
        if description.is_empty() || description.contains('\0') {
            return Err(Error::new(
                ErrorKind::InvalidName,
                "a kernel key description is not empty and has no NUL",
            ));
        }
        Ok(KernelKeyringPersistence {
            file: FilePersistence::new(cache_path)?,
            description,
        })
    }

    /// Whether `stored` (a file's contents) is what this backend writes: a compact JWE of
    /// `"alg":"dir"` and `"enc":"A256GCM"`. Decrypts nothing; for tools that sort the
    /// files of a cache directory by backend.
    pub fn recognizes(stored: &[u8]) -> bool {
        jwe::parse(stored).is_ok()
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The description of the kernel key (`keyctl search @u user <description>` finds
    /// it, with the persistent keyring linked into the user keyring).
    pub fn key_description(&self) -> &str {
        &self.description
    }

    /// The validation probe: adds a key of a unique name to the keyring this backend
    /// uses, reads it back and unlinks it. The cache's key and file are not touched.
    ///
    /// - Usable: `Ok(())`.
    /// - No kernel keyring (keyctl blocked or absent):
    ///   [`StorageUnavailable`](ErrorKind::StorageUnavailable); refused:
    ///   [`AccessDenied`](ErrorKind::AccessDenied); a full key quota:
    ///   [`StorageFull`](ErrorKind::StorageFull).
    pub fn validate(&self) -> Result<()> {
        Ring::open()?.probe(&probe_name())
    }

    /// Unlinks the cache's key from the keyring, e.g. after [`delete`](CachePersistence::delete)
    /// when no other process uses this cache: `Ok(false)` when there was none. A cache file
    /// still there then loads as empty (a lost key), and the next save makes a new key.
    pub fn remove_key(&self) -> Result<bool> {
        Ring::open()?.remove(&self.description)
    }

    /// The key to encrypt with: the one in the keyring, or a new one.
    ///
    /// Creation is serialised between processes by an advisory lock on the cache
    /// directory (not the MSAL lock, which a caller of `save` may already hold): two
    /// first saves would otherwise each add a key of the same name, the second replacing
    /// the first's payload, and the first's file would no longer decrypt.
    fn key_for_save(&self, ring: &Ring) -> Result<FoundKey> {
        if let Lookup::Found(found) = ring.find(&self.description)? {
            return Ok(found);
        }
        let dir = directory_of(self.file.path());
        create_private_dir(dir)?;
        let guard = File::open(dir).map_err(|e| Error::io("open", dir, e))?;
        guard.lock().map_err(|e| Error::io("lock", dir, e))?;
        let key = match ring.find(&self.description)? {
            Lookup::Found(found) => Ok(found),
            Lookup::Missing(_) => {
                tracing::info!(
                    key = %self.description,
                    keyring = %ring.kind,
                    "creating a new token cache key in the kernel keyring"
                );
                ring.create(&self.description)
            }
        };
        // Closing the descriptor releases the lock.
        drop(guard);
        key
    }

    fn corrupt(&self, err: JweError) -> Error {
        Error::with_source(
            ErrorKind::CorruptData,
            format!(
                "could not decrypt {}; the file was left as it is",
                self.file.path().display()
            ),
            err,
        )
    }
}

impl CachePersistence for KernelKeyringPersistence {
    fn describe(&self) -> Description {
        Description::new(
            "kernel-keyring",
            format!(
                "{} (JWE A256GCM; key {:?} in the persistent kernel keyring, or the user keyring without one)",
                self.file.path().display(),
                self.description
            ),
            Capabilities::full().encrypts_at_rest(true),
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        let Some(stored) = self.file.load()? else {
            return Ok(None);
        };
        if stored.is_empty() {
            return Ok(Some(stored));
        }
        let sealed = jwe::parse(&stored).map_err(|e| self.corrupt(e))?;
        let ring = Ring::open()?;
        let found = match ring.find(&self.description)? {
            Lookup::Found(found) => found,
            Lookup::Missing(why) => {
                tracing::warn!(
                    path = %self.file.path().display(),
                    key = %self.description,
                    keyring = %ring.kind,
                    reason = %why,
                    "the token cache key is gone from the kernel keyring (reboot, unlink or revoke); \
                     starting with an empty cache, the next save makes a new key"
                );
                return Ok(None);
            }
        };
        // A file written under a key that has since been replaced (the key was lost and
        // a save in progress elsewhere made a new one) is a lost key, not tampering.
        if let Some(kid) = sealed.kid.as_deref()
            && kid
                .parse::<i32>()
                .is_ok_and(|serial| serial != found.serial)
        {
            tracing::warn!(
                path = %self.file.path().display(),
                key = %self.description,
                "the token cache was encrypted under a kernel key that is gone; \
                 starting with an empty cache, the next save replaces it"
            );
            return Ok(None);
        }
        sealed
            .open(&found.key)
            .map(Some)
            .map_err(|e| self.corrupt(e))
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        let ring = Ring::open()?;
        let key = self.key_for_save(&ring)?;
        let sealed = jwe::seal(&key.key, &key.serial.to_string(), data).map_err(|e| {
            Error::with_source(
                ErrorKind::Other,
                format!(
                    "could not encrypt the token cache for {}",
                    self.file.path().display()
                ),
                e,
            )
        })?;
        self.file.save(&sealed)
    }

    fn delete(&self) -> Result<bool> {
        self.file.delete()
    }

    fn version(&self) -> Result<Option<ChangeToken>> {
        self.file.version()
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        self.file.lock(wait)
    }
}
