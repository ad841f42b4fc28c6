//! DPAPI (`CryptProtectData`/`CryptUnprotectData`) as a [`Cipher`], through `windows-sys`.
//! Everything else is platform-independent: see `encrypted_file.rs`.

use std::{
    fmt, io,
    path::{Path, PathBuf},
    ptr,
};

use windows_sys::Win32::{
    Foundation::LocalFree,
    Security::Cryptography::{
        CRYPT_INTEGER_BLOB, CRYPTPROTECT_UI_FORBIDDEN, CryptProtectData, CryptUnprotectData,
    },
};

use super::encrypted_file::{Cipher, EncryptedFilePersistence};
use crate::error::{BoxError, Result};

/// DPAPI in the current user's scope (no `CRYPTPROTECT_LOCAL_MACHINE`), never showing UI
/// (`CRYPTPROTECT_UI_FORBIDDEN`), with no entropy unless one is given: what the JS,
/// Python and .NET SDKs use, so each decrypts the others' files.
#[derive(Clone, Default)]
pub struct Dpapi {
    entropy: Option<Vec<u8>>,
}

impl Dpapi {
    /// DPAPI without entropy, as the SDKs use it.
    pub fn new() -> Self {
        Dpapi::default()
    }

    /// DPAPI with `entropy` as the optional entropy of both calls (MSAL Node's
    /// `optionalEntropy`, Python's `entropy`); an empty entropy means none, as in Python.
    /// Files written with one entropy cannot be read with another.
    pub fn with_entropy(entropy: impl Into<Vec<u8>>) -> Self {
        let entropy = entropy.into();
        Dpapi {
            entropy: (!entropy.is_empty()).then_some(entropy),
        }
    }
}

impl fmt::Debug for Dpapi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The entropy is a secret of sorts: say whether there is one, not what it is.
        f.debug_struct("Dpapi")
            .field("entropy", &self.entropy.is_some())
            .finish()
    }
}

impl Cipher for Dpapi {
    fn backend(&self) -> &str {
        "dpapi-file"
    }

    fn scheme(&self) -> String {
        let entropy = if self.entropy.is_some() {
            "with entropy"
        } else {
            "no entropy"
        };
        format!("DPAPI, CurrentUser scope, {entropy}")
    }

    fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, BoxError> {
        Ok(protect(plaintext, self.entropy.as_deref())?)
    }

    fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, BoxError> {
        Ok(unprotect(ciphertext, self.entropy.as_deref())?)
    }
}

/// A blob DPAPI reads: `data`, which it does not write through despite the `*mut`.
/// An empty slice's pointer is dangling but not null, as DPAPI wants even for no bytes
/// (.NET's `ProtectedData` passes a one-byte buffer for the same reason); it reads none.
fn input(data: &[u8]) -> io::Result<CRYPT_INTEGER_BLOB> {
    let len = u32::try_from(data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "DPAPI takes at most 4 GiB"))?;
    Ok(CRYPT_INTEGER_BLOB {
        cbData: len,
        pbData: data.as_ptr().cast_mut(),
    })
}

fn protect(plaintext: &[u8], entropy: Option<&[u8]>) -> io::Result<Vec<u8>> {
    let data = input(plaintext)?;
    let entropy = entropy.map(input).transpose()?;
    let mut out = CRYPT_INTEGER_BLOB {
        cbData: 0,
        pbData: ptr::null_mut(),
    };
    // SAFETY: `data` and `entropy` describe live slices of their stated lengths, which
    // DPAPI only reads; the description, reserved and prompt pointers may be null; `out`
    // is a valid blob for DPAPI to fill.
    let ok = unsafe {
        CryptProtectData(
            &data,
            ptr::null(),
            entropy.as_ref().map_or(ptr::null(), ptr::from_ref),
            ptr::null(),
            ptr::null(),
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut out,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so `out` is DPAPI's LocalAlloc'ed output, ours to free.
    Ok(unsafe { take(out, false) })
}

fn unprotect(ciphertext: &[u8], entropy: Option<&[u8]>) -> io::Result<Vec<u8>> {
    let data = input(ciphertext)?;
    let entropy = entropy.map(input).transpose()?;
    let mut out = CRYPT_INTEGER_BLOB {
        cbData: 0,
        pbData: ptr::null_mut(),
    };
    // SAFETY: as in `protect`; a null description pointer asks for no description back.
    let ok = unsafe {
        CryptUnprotectData(
            &data,
            ptr::null_mut(),
            entropy.as_ref().map_or(ptr::null(), ptr::from_ref),
            ptr::null(),
            ptr::null(),
            CRYPTPROTECT_UI_FORBIDDEN,
            &mut out,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as in `protect`. The plaintext is wiped before the buffer is freed.
    Ok(unsafe { take(out, true) })
}

/// Copies DPAPI's output out and frees it with `LocalFree`, first zeroing it if `wipe`.
///
/// # Safety
///
/// `blob` is the output of a successful `CryptProtectData` or `CryptUnprotectData`:
/// `pbData` is null or a `LocalAlloc` buffer of `cbData` bytes that nothing else frees.
unsafe fn take(blob: CRYPT_INTEGER_BLOB, wipe: bool) -> Vec<u8> {
    if blob.pbData.is_null() {
        return Vec::new();
    }
    let len = blob.cbData as usize;
    // SAFETY: per the contract, `pbData` points to `len` initialised bytes.
    let bytes = unsafe { std::slice::from_raw_parts(blob.pbData, len) }.to_vec();
    if wipe {
        // SAFETY: the same buffer, writable and `len` bytes long.
        unsafe { ptr::write_bytes(blob.pbData, 0, len) };
    }
    // SAFETY: a LocalAlloc buffer, freed once, here.
    unsafe { LocalFree(blob.pbData.cast()) };
    bytes
}

/// The token cache in a DPAPI-encrypted file, as the JS, Python and .NET SDKs keep it on
/// Windows (`%LOCALAPPDATA%\.IdentityService\<name>`): the raw `CryptProtectData` output,
/// current-user scope, no entropy by default, with the MSAL lock file at
/// `<path>.lockfile`. See [`EncryptedFilePersistence`] for the contract.
#[derive(Debug, Clone)]
pub struct DpapiPersistence {
    inner: EncryptedFilePersistence<Dpapi>,
}

impl DpapiPersistence {
    /// The cache in the file at `cache_path`, without entropy. Touches nothing.
    ///
    /// A path without a file name: [`InvalidName`](crate::ErrorKind::InvalidName).
    pub fn new(cache_path: impl Into<PathBuf>) -> Result<Self> {
        DpapiPersistence::with_cipher(cache_path, Dpapi::new())
    }

    /// The cache in the file at `cache_path`, encrypted by `dpapi` (e.g. with entropy).
    pub fn with_cipher(cache_path: impl Into<PathBuf>, dpapi: Dpapi) -> Result<Self> {
        Ok(DpapiPersistence {
            inner: EncryptedFilePersistence::new(cache_path, dpapi)?,
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The validation probe: encrypts and decrypts a test value in memory. See
    /// [`EncryptedFilePersistence::validate`].
    pub fn validate(&self) -> Result<()> {
        self.inner.validate()
    }
}

forward_persistence!(DpapiPersistence, inner);
