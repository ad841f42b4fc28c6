//! Options mirroring `tokenCachePersistenceOptions` of the Azure SDKs, and the one
//! constructor that turns them into a persistence.

use std::path::PathBuf;

use crate::{
    error::{Error, ErrorKind, Result},
    file::FilePersistence,
    name::validate_name,
    persistence::CachePersistence,
};

/// The default cache name of the Azure SDKs.
pub const DEFAULT_NAME: &str = "msal.cache";

/// Options for the persistent token cache, as in the JS `@azure/identity`
/// `tokenCachePersistenceOptions { enabled, name, unsafeAllowUnencryptedStorage }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCachePersistenceOptions {
    /// Persist the cache at all. When false, [`persistence_for`] returns `None` and callers
    /// keep their tokens in memory only.
    pub enabled: bool,
    /// The cache name: a file name inside [`directory`](Self::directory). Default
    /// `msal.cache`. Checked by [`validate_name`](crate::validate_name).
    pub name: String,
    /// Allow a plaintext file (mode 0600) when no secure storage is usable. Off by default;
    /// the fallback is logged at warning level, never silent.
    pub unsafe_allow_unencrypted_storage: bool,
    /// The cache directory. `None` means the SDK default, see [`default_directory`].
    /// Tests point it at a temporary directory.
    pub directory: Option<PathBuf>,
}

impl Default for TokenCachePersistenceOptions {
    fn default() -> Self {
        TokenCachePersistenceOptions {
            enabled: false,
            name: DEFAULT_NAME.to_owned(),
            unsafe_allow_unencrypted_storage: false,
            directory: None,
        }
    }
}

impl TokenCachePersistenceOptions {
    /// The path of the cache file (or marker file) these options name.
    pub fn cache_path(&self) -> Result<PathBuf> {
        validate_name(&self.name)?;
        let dir = match &self.directory {
            Some(dir) => dir.clone(),
            None => default_directory()?,
        };
        Ok(dir.join(&self.name))
    }
}

/// The directory the Azure SDKs keep their caches in: `~/.IdentityService` on Linux and
/// macOS, `%LOCALAPPDATA%\.IdentityService` on Windows.
///
/// Fails with [`StorageUnavailable`](ErrorKind::StorageUnavailable) when the user has no
/// home (or local application data) directory.
pub fn default_directory() -> Result<PathBuf> {
    #[cfg(windows)]
    let root = std::env::var_os("LOCALAPPDATA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    #[cfg(not(windows))]
    let root = std::env::home_dir().filter(|p| !p.as_os_str().is_empty());
    root.map(|root| root.join(".IdentityService")).ok_or_else(|| {
        Error::new(
            ErrorKind::StorageUnavailable,
            "cannot find the user's home directory for ~/.IdentityService; set `directory` in the options",
        )
    })
}

/// The persistence for `options`, with the Azure SDK defaults.
///
/// - `enabled: false`: `Ok(None)`.
/// - An invalid name: an [`InvalidName`](ErrorKind::InvalidName) error.
/// - No secure storage backend is usable: with `unsafe_allow_unencrypted_storage`, a
///   [`FilePersistence`] at the cache path (files 0600) and a warning in the log; without
///   it, a [`StorageUnavailable`](ErrorKind::StorageUnavailable) error. Never a silent
///   plaintext file.
///
/// This build has no secure backend yet, so the plaintext file is the only storage it can
/// return.
pub fn persistence_for(
    options: &TokenCachePersistenceOptions,
) -> Result<Option<Box<dyn CachePersistence>>> {
    if !options.enabled {
        return Ok(None);
    }
    let path = options.cache_path()?;
    if !options.unsafe_allow_unencrypted_storage {
        return Err(Error::new(
            ErrorKind::StorageUnavailable,
            format!(
                "no secure storage backend is available for the token cache {}; \
                 set unsafe_allow_unencrypted_storage to store it in a plaintext file",
                path.display()
            ),
        ));
    }
    tracing::warn!(
        path = %path.display(),
        "storing the token cache unencrypted because unsafe_allow_unencrypted_storage is set"
    );
    Ok(Some(Box::new(FilePersistence::new(path)?)))
}
