//! Options mirroring `tokenCachePersistenceOptions` of the Azure SDKs, and the one
//! constructor that turns them into a persistence.

use std::path::PathBuf;

use crate::{
    backends::file::FilePersistence,
    backends::platform::KeychainAccount,
    backends::secret_service::KeyringProfile,
    error::{Error, ErrorKind, Result},
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
    /// `msal.cache`. Checked by [`validate_name`].
    pub name: String,
    /// Allow a plaintext file (mode 0600) when no secure storage is usable. Off by default;
    /// the fallback is logged at warning level, never silent.
    pub unsafe_allow_unencrypted_storage: bool,
    /// The cache directory. `None` means the SDK default, see [`default_directory`].
    /// Tests point it at a temporary directory.
    pub directory: Option<PathBuf>,
    /// Linux: the Secret Service item layout, that is, which SDK's cache to share.
    /// Default: the Python `azure-identity` layout, see [`KeyringProfile`]. Ignored
    /// elsewhere.
    pub keyring_profile: KeyringProfile,
    /// Linux: the D-Bus address of the bus the Secret Service is on, e.g.
    /// `unix:path=/run/user/1000/bus`. `None` means the session bus
    /// (`DBUS_SESSION_BUS_ADDRESS`). For tests and containers. Ignored elsewhere.
    pub dbus_address: Option<String>,
    /// macOS: the Keychain account of the item, that is, which SDK's cache to share.
    /// Default: the JS and Python constant, see [`KeychainAccount`]. Ignored elsewhere.
    pub keychain_account: KeychainAccount,
    /// Linux (feature `kernel-keyring`): when no Secret Service is reachable, keep the
    /// cache encrypted in a file under a key in the kernel keyring (see
    /// `KernelKeyringPersistence`). Default `true`. Turn it off to store only in the
    /// Secret Service (to share the cache with SDKs that read only there), and in tests
    /// of the plaintext fallback. Ignored elsewhere.
    pub use_kernel_keyring: bool,
}

impl Default for TokenCachePersistenceOptions {
    fn default() -> Self {
        TokenCachePersistenceOptions {
            enabled: false,
            name: DEFAULT_NAME.to_owned(),
            unsafe_allow_unencrypted_storage: false,
            directory: None,
            keyring_profile: KeyringProfile::default(),
            dbus_address: None,
            keychain_account: KeychainAccount::default(),
            use_kernel_keyring: true,
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
/// - Linux (feature `secret-service`): a
///   [`SecretServicePersistence`](crate::SecretServicePersistence) with
///   [`keyring_profile`](TokenCachePersistenceOptions::keyring_profile), after its
///   validation probe passed (a separate item written, read back and deleted).
/// - Linux, no Secret Service reachable (no session bus, no service on it:
///   [`StorageUnavailable`](ErrorKind::StorageUnavailable) from its probe; feature
///   `kernel-keyring`, [`use_kernel_keyring`](TokenCachePersistenceOptions::use_kernel_keyring)):
///   a `KernelKeyringPersistence` at the cache path after its probe passed (a key of a
///   unique name added, read back and unlinked), with the Secret Service's typed reason
///   logged at info level. A Secret Service that is there but refuses (a locked
///   keyring) is reported, not bypassed: a second store would split the cache.
/// - macOS (feature `keychain`): a [`KeychainPersistence`](crate::platform) item with
///   [`keychain_account`](TokenCachePersistenceOptions::keychain_account), after its
///   validation probe passed.
/// - Windows (feature `dpapi`): a DPAPI-encrypted file (current user, no entropy) at the
///   cache path, after an encryption round trip.
/// - The secure storage fails its probe, or this platform or build has none: without
///   `unsafe_allow_unencrypted_storage`, the probe's typed error (e.g.
///   [`StorageUnavailable`](ErrorKind::StorageUnavailable) for "no D-Bus session bus" or
///   "no Secret Service", [`AccessDenied`](ErrorKind::AccessDenied) for a locked
///   keyring), its message naming the cause and the opt-in; with it, a
///   [`FilePersistence`] at the cache path (files 0600) and a warning in the log naming
///   the cause. Never a silent plaintext file.
///
/// Only the Secret Service backend touches D-Bus; the file backend never does.
pub fn persistence_for(
    options: &TokenCachePersistenceOptions,
) -> Result<Option<Box<dyn CachePersistence>>> {
    if !options.enabled {
        return Ok(None);
    }
    let path = options.cache_path()?;
    let cause = match secure_persistence(options, &path) {
        Ok(secure) => return Ok(Some(secure)),
        Err(cause) => cause,
    };
    if !options.unsafe_allow_unencrypted_storage {
        return Err(Error::with_source(
            cause.kind(),
            format!(
                "no secure storage for the token cache {}: {cause}; \
                 set unsafe_allow_unencrypted_storage to store it in a plaintext file",
                path.display()
            ),
            cause,
        ));
    }
    tracing::warn!(
        path = %path.display(),
        cause = %cause,
        "storing the token cache unencrypted because secure storage is unusable and \
         unsafe_allow_unencrypted_storage is set"
    );
    Ok(Some(Box::new(FilePersistence::new(path)?)))
}

/// Linux: the Secret Service once its probe passed; where none is reachable, the kernel
/// keyring once its probe passed.
#[cfg(all(
    target_os = "linux",
    any(feature = "secret-service", feature = "kernel-keyring")
))]
fn secure_persistence(
    options: &TokenCachePersistenceOptions,
    path: &std::path::Path,
) -> Result<Box<dyn CachePersistence>> {
    let cause = match secret_service_persistence(options, path) {
        Ok(secure) => return Ok(secure),
        Err(cause) => cause,
    };
    if cause.kind() != ErrorKind::StorageUnavailable || !options.use_kernel_keyring {
        return Err(cause);
    }
    kernel_keyring_persistence(path, cause)
}

/// The Secret Service item, after its validation probe (a separate item).
#[cfg(all(target_os = "linux", feature = "secret-service"))]
fn secret_service_persistence(
    options: &TokenCachePersistenceOptions,
    path: &std::path::Path,
) -> Result<Box<dyn CachePersistence>> {
    let mut secure = crate::SecretServicePersistence::new(path, options.keyring_profile)?;
    if let Some(address) = &options.dbus_address {
        secure = secure.with_bus_address(address.clone());
    }
    secure.validate()?;
    Ok(Box::new(secure))
}

#[cfg(all(
    target_os = "linux",
    not(feature = "secret-service"),
    feature = "kernel-keyring"
))]
fn secret_service_persistence(
    _options: &TokenCachePersistenceOptions,
    _path: &std::path::Path,
) -> Result<Box<dyn CachePersistence>> {
    Err(Error::new(
        ErrorKind::StorageUnavailable,
        "this build has no Secret Service backend (feature secret-service)",
    ))
}

/// The kernel-keyring file, after its probe; `cause` is why the Secret Service is not
/// used, logged on success and kept in the error on failure.
#[cfg(all(target_os = "linux", feature = "kernel-keyring"))]
fn kernel_keyring_persistence(
    path: &std::path::Path,
    cause: Error,
) -> Result<Box<dyn CachePersistence>> {
    let secure = crate::KernelKeyringPersistence::new(path)?;
    match secure.validate() {
        Ok(()) => {
            tracing::info!(
                path = %path.display(),
                reason = %cause,
                reason_kind = cause.kind().as_str(),
                "no Secret Service reachable; keeping the token cache encrypted under a key in the kernel keyring"
            );
            Ok(Box::new(secure))
        }
        Err(err) => Err(Error::with_source(
            err.kind(),
            format!("{cause}; and the kernel keyring is unusable: {err}"),
            cause,
        )),
    }
}

#[cfg(all(
    target_os = "linux",
    not(feature = "kernel-keyring"),
    feature = "secret-service"
))]
fn kernel_keyring_persistence(
    _path: &std::path::Path,
    cause: Error,
) -> Result<Box<dyn CachePersistence>> {
    Err(cause)
}

/// No secure backend in this build for this platform.
/// macOS: the Keychain item, after its validation probe (a separate item).
#[cfg(all(target_os = "macos", feature = "keychain"))]
fn secure_persistence(
    options: &TokenCachePersistenceOptions,
    path: &std::path::Path,
) -> Result<Box<dyn CachePersistence>> {
    let secure = crate::KeychainPersistence::new(path, options.keychain_account)?;
    secure.validate()?;
    Ok(Box::new(secure))
}

/// Windows: the DPAPI-encrypted file, after an in-memory encryption round trip.
#[cfg(all(windows, feature = "dpapi"))]
fn secure_persistence(
    _options: &TokenCachePersistenceOptions,
    path: &std::path::Path,
) -> Result<Box<dyn CachePersistence>> {
    let secure = crate::DpapiPersistence::new(path)?;
    secure.validate()?;
    Ok(Box::new(secure))
}

#[cfg(not(any(
    all(
        target_os = "linux",
        any(feature = "secret-service", feature = "kernel-keyring")
    ),
    all(target_os = "macos", feature = "keychain"),
    all(windows, feature = "dpapi")
)))]
fn secure_persistence(
    _options: &TokenCachePersistenceOptions,
    _path: &std::path::Path,
) -> Result<Box<dyn CachePersistence>> {
    Err(Error::new(
        ErrorKind::StorageUnavailable,
        "this build has no secure storage backend for this platform",
    ))
}
