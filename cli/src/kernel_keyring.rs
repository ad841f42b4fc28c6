//! The kernel-keyring caches (Linux): a file encrypted under a key in the persistent
//! kernel keyring, what `persistence_for` uses where no Secret Service is reachable.
//! Recognised by their contents (a compact JWE), never decrypted to be listed.

use std::path::Path;

use identity_cache_persistence::CachePersistence;

use crate::exit::Failure;

/// Whether the file at `path` is a kernel-keyring cache.
#[cfg(target_os = "linux")]
pub fn is_cache_file(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|stored| {
        identity_cache_persistence::KernelKeyringPersistence::recognizes(&stored)
    })
}

#[cfg(not(target_os = "linux"))]
pub fn is_cache_file(_: &Path) -> bool {
    false
}

/// The persistence of the kernel-keyring cache at `path`.
#[cfg(target_os = "linux")]
pub fn persistence(path: &Path) -> Result<Box<dyn CachePersistence>, Failure> {
    Ok(Box::new(
        identity_cache_persistence::KernelKeyringPersistence::new(path)?,
    ))
}

#[cfg(not(target_os = "linux"))]
pub fn persistence(_: &Path) -> Result<Box<dyn CachePersistence>, Failure> {
    Err(Failure::new(
        crate::exit::Code::Failed,
        "kernel-keyring caches are Linux-only",
    ))
}

/// The validation probe of the kernel keyring (a key of a unique name added, read back
/// and unlinked): `Ok` when programs would use it, else why not.
#[cfg(target_os = "linux")]
pub fn validate(dir: &Path) -> Result<(), identity_cache_persistence::Error> {
    identity_cache_persistence::KernelKeyringPersistence::new(dir.join("msal.cache"))?.validate()
}

#[cfg(not(target_os = "linux"))]
pub fn validate(_: &Path) -> Result<(), identity_cache_persistence::Error> {
    Err(identity_cache_persistence::Error::new(
        identity_cache_persistence::ErrorKind::StorageUnavailable,
        "the kernel keyring is Linux-only",
    ))
}
