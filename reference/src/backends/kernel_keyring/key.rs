//! The content key in the kernel's key retention service, through `linux-keyutils`.
//!
//! Named and placed as the Go SDK's `azidentity/cache` (`cache_linux.go`) does, so that
//! both find the same key for the same cache name:
//! - a key of type `user` whose description is the cache name (the cache file's name);
//! - in the user's persistent keyring (`KEYCTL_GET_PERSISTENT`, linked into the user
//!   keyring), or in the user keyring itself where the kernel has no persistent keyrings;
//! - the payload is the 32 key bytes and a NUL, as Go writes it (Go reads the first 32).
//!
//! Like Go, the user keyring is linked into the session keyring first (errors ignored),
//! so that this process *possesses* what it links there: a key's default permissions
//! grant reading only to its possessor. Unlike Go, no session keyring is created for that.

use std::fmt;

use linux_keyutils::{Key, KeyError, KeyRing, KeyRingIdentifier};

use super::jwe::{ContentKey, KEY_LEN};
use crate::error::{Error, ErrorKind, Result};

/// Which keyring holds the key; for messages and `describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RingKind {
    /// The user's persistent keyring (survives the end of all login sessions).
    Persistent,
    /// The user keyring (no persistent keyrings on this kernel).
    User,
}

impl fmt::Display for RingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RingKind::Persistent => "persistent kernel keyring",
            RingKind::User => "user kernel keyring",
        })
    }
}

/// The keyring the key lives in, resolved for one operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ring {
    ring: KeyRing,
    pub(crate) kind: RingKind,
}

/// The content key found in the keyring, with its serial number (the JWE `kid`).
#[derive(Debug)]
pub(crate) struct FoundKey {
    pub(crate) key: ContentKey,
    pub(crate) serial: i32,
}

/// The outcome of looking for the key.
#[derive(Debug)]
pub(crate) enum Lookup {
    Found(FoundKey),
    /// No key of that name, or it was revoked or expired (after a reboot, `keyctl
    /// unlink` or `keyctl revoke`).
    Missing(KeyError),
}

impl Ring {
    /// The persistent keyring, else the user keyring.
    ///
    /// - No keyring at all (keyctl blocked, e.g. by a container's seccomp profile, or a
    ///   kernel without keys): [`StorageUnavailable`](ErrorKind::StorageUnavailable).
    pub(crate) fn open() -> Result<Ring> {
        let user = KeyRing::from_special_id(KeyRingIdentifier::User, true)
            .map_err(|e| keyctl_error("open the user kernel keyring", e))?;
        // Without `create`: a process with no session keyring of its own searches the
        // user-session keyring, which links the user keyring already, and a library must
        // not install a new session keyring in its host process.
        if let Ok(session) = KeyRing::from_special_id(KeyRingIdentifier::Session, false) {
            // Possession, as Go does; a failure here does not stop the rest from working.
            let _ = session.link_keyring(user);
        }
        Ok(match KeyRing::get_persistent(KeyRingIdentifier::User) {
            Ok(ring) => Ring {
                ring,
                kind: RingKind::Persistent,
            },
            Err(_) => Ring {
                ring: user,
                kind: RingKind::User,
            },
        })
    }

    /// The key named `description`, or [`Lookup::Missing`].
    ///
    /// - A key of that name whose payload is not a 256-bit key (someone else's key):
    ///   [`CorruptData`](ErrorKind::CorruptData), nothing changed.
    /// - keyctl refuses: [`AccessDenied`](ErrorKind::AccessDenied) or another kind.
    pub(crate) fn find(&self, description: &str) -> Result<Lookup> {
        let key = match self.ring.search(description) {
            Ok(key) => key,
            Err(e) if is_missing(e) => return Ok(Lookup::Missing(e)),
            Err(e) => return Err(keyctl_error("search the kernel keyring", e)),
        };
        // One byte more than the key, for Go's NUL terminator; a longer payload is read
        // truncated by the kernel and shows as a length above the buffer.
        let mut payload = [0u8; KEY_LEN + 2];
        let len = match key.read(&mut payload) {
            Ok(len) => len,
            Err(e) if is_missing(e) => return Ok(Lookup::Missing(e)),
            Err(e) => return Err(keyctl_error("read the kernel key", e)),
        };
        let bytes = match len {
            KEY_LEN => &payload[..KEY_LEN],
            n if n == KEY_LEN + 1 && payload[KEY_LEN] == 0 => &payload[..KEY_LEN],
            _ => {
                payload.fill(0);
                return Err(Error::new(
                    ErrorKind::CorruptData,
                    format!(
                        "the kernel key {description:?} is not a 256-bit cache key ({len} bytes); it was left as it is"
                    ),
                ));
            }
        };
        let found = ContentKey::from_slice(bytes).map(|key_bytes| FoundKey {
            key: key_bytes,
            serial: key.get_id().as_raw_id(),
        });
        payload.fill(0);
        found
            .map(Lookup::Found)
            .ok_or_else(|| Error::new(ErrorKind::Other, "the kernel key could not be copied"))
    }

    /// Adds a new random key named `description` (replacing the link of a revoked or
    /// expired one of that name).
    pub(crate) fn create(&self, description: &str) -> Result<FoundKey> {
        // rand_core's error is no `std::error::Error` without its `std` feature: its
        // text goes in the message.
        let key = ContentKey::random().map_err(|e| {
            Error::new(
                ErrorKind::Other,
                format!("could not make a cache key: the OS random generator failed: {e}"),
            )
        })?;
        let mut payload = [0u8; KEY_LEN + 1];
        payload[..KEY_LEN].copy_from_slice(key.bytes());
        let added = self.ring.add_key(description, &payload[..]);
        payload.fill(0);
        let added: Key = added.map_err(|e| keyctl_error("add a key to the kernel keyring", e))?;
        Ok(FoundKey {
            key,
            serial: added.get_id().as_raw_id(),
        })
    }

    /// Unlinks the key named `description` from this keyring: `Ok(false)` when there was
    /// none (or it was already revoked or expired).
    pub(crate) fn remove(&self, description: &str) -> Result<bool> {
        let key = match self.ring.search(description) {
            Ok(key) => key,
            Err(e) if is_missing(e) => return Ok(false),
            Err(e) => return Err(keyctl_error("search the kernel keyring", e)),
        };
        match self.ring.unlink_key(key) {
            Ok(()) => Ok(true),
            Err(e) if is_missing(e) => Ok(false),
            Err(e) => Err(keyctl_error("unlink the kernel key", e)),
        }
    }

    /// The validation probe: adds a key of a unique name, reads it back and unlinks it.
    pub(crate) fn probe(&self, description: &str) -> Result<()> {
        let created = self.create(description)?;
        let read = self.find(description);
        let removed = self
            .ring
            .unlink_key(Key::from_id(created.serial.into()))
            .map_err(|e| keyctl_error("unlink the probe key", e));
        match read? {
            Lookup::Found(found) if found.key.bytes() == created.key.bytes() => removed,
            _ => Err(Error::new(
                ErrorKind::Other,
                format!(
                    "the validation probe did not read back its key from the {}",
                    self.kind
                ),
            )),
        }
    }
}

/// The errors after which the key is gone rather than unreachable.
fn is_missing(e: KeyError) -> bool {
    matches!(
        e,
        KeyError::KeyDoesNotExist
            | KeyError::KeyRevoked
            | KeyError::KeyExpired
            | KeyError::MissingFileOrDirectory
    )
}

/// keyctl's error, typed: never a key byte in it (the crate's errors are errno names).
fn keyctl_error(action: &str, e: KeyError) -> Error {
    let kind = match e {
        KeyError::AccessDenied | KeyError::PermissionDenied => ErrorKind::AccessDenied,
        KeyError::QuotaExceeded => ErrorKind::StorageFull,
        KeyError::OperationNotSupported | KeyError::KeyringDoesNotExist => {
            ErrorKind::StorageUnavailable
        }
        // ENOSYS: a kernel built without keys, or a seccomp filter that answers so.
        KeyError::Unknown(errno) if errno == libc::ENOSYS => ErrorKind::StorageUnavailable,
        _ => ErrorKind::Other,
    };
    Error::with_source(kind, format!("could not {action}: {e}"), e)
}
