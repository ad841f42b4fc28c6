//! [`EncryptedFilePersistence`]: the blob encrypted by a [`Cipher`] in a file written the
//! way [`FilePersistence`] writes (temporary file, fsync, rename), over a small trait.
//!
//! This is the part of the Windows DPAPI backend that does not call DPAPI, so it is
//! compiled and tested on every platform; DPAPI itself is a thin [`Cipher`] (`dpapi.rs`).

use std::{fmt, path::Path, path::PathBuf, time::Duration};

use super::probe_name;

use crate::{
    backends::file::FilePersistence,
    error::{BoxError, Error, ErrorKind, Result},
    persistence::{CachePersistence, Capabilities, ChangeToken, Description, LockGuard},
};

/// Encrypts and decrypts whole blobs, e.g. with DPAPI.
///
/// - [`encrypt`](Self::encrypt) returns the exact bytes to store: no header, no encoding,
///   so that the file is what the other SDKs write.
/// - [`decrypt`](Self::decrypt) fails when the bytes are not a ciphertext it can open
///   (damaged, written by another user or machine, another entropy).
///
/// Neither error nor `Debug` contains the plaintext.
pub trait Cipher: Send + Sync + fmt::Debug {
    /// A short stable backend name for [`Description::backend`], e.g. `"dpapi-file"`.
    fn backend(&self) -> &str;
    /// How it encrypts, for people, e.g. `DPAPI, CurrentUser scope, no entropy`.
    fn scheme(&self) -> String;
    /// The ciphertext of `plaintext`.
    fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, BoxError>;
    /// The plaintext of `ciphertext`.
    fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, BoxError>;
}

/// The token cache encrypted by a [`Cipher`] in one file, with the MSAL lock file beside
/// it.
///
/// - **File format**: the cipher's output as it is, for every blob, the empty one too:
///   all three SDKs decrypt that, where Python's `msal-extensions` fails on an empty file.
///   An *empty file* is read as an empty cache without decrypting, since MSAL.NET's
///   `DpApiEncryptedFileAccessor` writes one for an empty cache.
/// - **Writes**: as [`FilePersistence`]: a temporary file beside the cache file, fsync,
///   rename, so readers and crashes see the old or the new ciphertext, never a torn one.
///   Only ciphertext reaches the disk, temporary files included.
/// - **Undecryptable contents**: [`CorruptData`](ErrorKind::CorruptData), and the file is
///   left as it is (it may be another user's or a newer SDK's; it is not ours to delete).
/// - **Change token and lock**: the file's, as [`FilePersistence`]: `<path>.lockfile`.
#[derive(Debug, Clone)]
pub struct EncryptedFilePersistence<C> {
    file: FilePersistence,
    cipher: C,
}

impl<C: Cipher> EncryptedFilePersistence<C> {
    /// The cache encrypted by `cipher` in the file at `path`. Touches nothing.
    ///
    /// A path without a file name: [`InvalidName`](ErrorKind::InvalidName).
    pub fn new(path: impl Into<PathBuf>, cipher: C) -> Result<Self> {
        Ok(EncryptedFilePersistence {
            file: FilePersistence::new(path)?,
            cipher,
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The cipher.
    pub fn cipher(&self) -> &C {
        &self.cipher
    }

    /// The validation probe: encrypts a test value and decrypts it again, in memory; no
    /// file is written.
    ///
    /// - Usable: `Ok(())`.
    /// - Encryption fails: [`Other`](ErrorKind::Other) with the cipher's error as source.
    /// - Decryption fails or gives other bytes: [`Other`](ErrorKind::Other).
    pub fn validate(&self) -> Result<()> {
        let value = probe_name();
        let sealed = self.cipher.encrypt(value.as_bytes()).map_err(|e| {
            Error::with_source(
                ErrorKind::Other,
                format!(
                    "the validation probe could not encrypt with {}",
                    self.cipher.scheme()
                ),
                e,
            )
        })?;
        match self.cipher.decrypt(&sealed) {
            Ok(opened) if opened == value.as_bytes() => Ok(()),
            Ok(_) => Err(Error::new(
                ErrorKind::Other,
                format!(
                    "the validation probe decrypted different data with {}",
                    self.cipher.scheme()
                ),
            )),
            Err(e) => Err(Error::with_source(
                ErrorKind::Other,
                format!(
                    "the validation probe could not decrypt what {} encrypted",
                    self.cipher.scheme()
                ),
                e,
            )),
        }
    }
}

impl<C: Cipher> CachePersistence for EncryptedFilePersistence<C> {
    fn describe(&self) -> Description {
        Description::new(
            self.cipher.backend(),
            format!("{} ({})", self.file.path().display(), self.cipher.scheme()),
            Capabilities::full().encrypts_at_rest(true),
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        let Some(sealed) = self.file.load()? else {
            return Ok(None);
        };
        if sealed.is_empty() {
            return Ok(Some(sealed));
        }
        self.cipher.decrypt(&sealed).map(Some).map_err(|e| {
            Error::with_source(
                ErrorKind::CorruptData,
                format!(
                    "could not decrypt {} with {}; the file was left as it is",
                    self.file.path().display(),
                    self.cipher.scheme()
                ),
                e,
            )
        })
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        let sealed = self.cipher.encrypt(data).map_err(|e| {
            Error::with_source(
                ErrorKind::Other,
                format!(
                    "could not encrypt the token cache for {} with {}",
                    self.file.path().display(),
                    self.cipher.scheme()
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
