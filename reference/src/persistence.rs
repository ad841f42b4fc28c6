//! The plugin trait: the contract every persistence implementation keeps, and that the
//! conformance suite checks.

use std::{fmt, sync::Arc, time::Duration};

use crate::error::Result;

/// Where an MSAL token cache blob lives between processes.
///
/// Implementations are cheap handles on one storage slot (a file, a keyring item). Two
/// handles created for the same slot, in one process or in several, see each other's
/// writes. All methods take `&self`; implementations are `Send + Sync` and use interior
/// mutability where they need state.
///
/// The blob is opaque: a plugin stores and returns bytes, byte for byte, and never parses,
/// re-encodes or trims them.
///
/// Errors carry an [`ErrorKind`](crate::ErrorKind) that generic code acts on. No method
/// panics on bad input or OS failure, and no error message or `Debug` output contains the
/// blob.
pub trait CachePersistence: Send + Sync + fmt::Debug {
    /// What this plugin is and what it can do. Cheap; never fails.
    fn describe(&self) -> Description;

    /// Reads the whole blob last saved.
    ///
    /// - Nothing stored (never saved, or deleted since): `Ok(None)`.
    /// - An empty blob was saved: `Ok(Some(vec![]))`; "absent" and "empty" are different.
    /// - Otherwise: `Ok(Some(bytes))`, exactly the bytes of one completed [`save`], never a
    ///   mix of two saves and never a prefix of one, even while another process saves or
    ///   after a saver was killed.
    /// - Stored data that cannot be read back (not a regular file, undecodable ciphertext):
    ///   `Err` of kind [`CorruptData`](crate::ErrorKind::CorruptData), and the stored data is
    ///   left untouched.
    /// - The storage cannot be reached or refuses access: `Err` of kind
    ///   [`StorageUnavailable`](crate::ErrorKind::StorageUnavailable) or
    ///   [`AccessDenied`](crate::ErrorKind::AccessDenied).
    ///
    /// [`save`]: CachePersistence::save
    fn load(&self) -> Result<Option<Vec<u8>>>;

    /// Replaces the whole blob with `data`, atomically and durably.
    ///
    /// - On `Ok(())` the new blob is durable: a crash or power loss afterwards does not lose it.
    /// - A concurrent or later [`load`](CachePersistence::load), in any process, sees either
    ///   the previous blob or `data`, never a mix and never a truncated blob, also when this
    ///   process is killed (SIGKILL) in the middle of the save.
    /// - On `Err` the previous blob is still stored, unchanged, and the plugin leaves nothing
    ///   behind (no temporary files).
    /// - `data` larger than [`Capabilities::max_size`]: `Err` of kind
    ///   [`TooLarge`](crate::ErrorKind::TooLarge), nothing changed.
    /// - A full disk or quota: `Err` of kind [`StorageFull`](crate::ErrorKind::StorageFull).
    /// - The change token moves: [`version`](CachePersistence::version) returns a token
    ///   different from every token returned before this save.
    ///
    /// Saving does not take the lock; callers doing read-modify-write hold
    /// [`lock`](CachePersistence::lock) around load and save.
    fn save(&self, data: &[u8]) -> Result<()>;

    /// Removes the blob.
    ///
    /// - Something was stored: it is removed, `Ok(true)`, and a later `load` returns `None`.
    /// - Nothing was stored: `Ok(false)`, and nothing else changes.
    /// - Files that are not the blob (the lock file, markers) are left in place.
    fn delete(&self) -> Result<bool>;

    /// The change token of what is stored now: cheap, and reads no secret.
    ///
    /// - Nothing stored: `Ok(None)`.
    /// - After every save, by this handle, another handle or another process, the token
    ///   differs from every token observed before that save, also when the new blob has the
    ///   same size as the old one and was written within the same second.
    /// - Without a save or delete in between, two calls return equal tokens.
    ///
    /// Plugins that cannot detect changes return `Err` of kind
    /// [`NotSupported`](crate::ErrorKind::NotSupported) and say so in
    /// [`Capabilities::change_detection`].
    fn version(&self) -> Result<Option<ChangeToken>>;

    /// Takes the exclusive lock for a read-modify-write of this slot, waiting at most `wait`.
    ///
    /// - While the returned guard lives, no other guard for the same slot exists: not in
    ///   another process, not from another handle in this process, not on another thread.
    /// - Dropping the guard (or [`LockGuard::release`]) releases it; so does the death of the
    ///   holding process, however it dies: a later `lock` by someone else succeeds within the
    ///   plugin's recovery bound.
    /// - The lock is not re-entrant: a second `lock` while the first guard lives waits, and
    ///   fails with [`LockTimeout`](crate::ErrorKind::LockTimeout) when `wait` runs out.
    /// - `wait` of zero tries once: the guard when the lock is free, otherwise
    ///   [`LockTimeout`](crate::ErrorKind::LockTimeout) at once.
    /// - `wait` too long to add to the clock ([`Duration::MAX`], how a caller says "no
    ///   deadline") waits until the lock is free, however long; it never panics.
    /// - Plugins without a lock return `Err` of kind
    ///   [`NotSupported`](crate::ErrorKind::NotSupported) and say so in
    ///   [`Capabilities::exclusive_lock`].
    fn lock(&self, wait: Duration) -> Result<LockGuard>;
}

/// Smart pointers to a persistence are persistences, so `Box<dyn CachePersistence>` and
/// `Arc<dyn CachePersistence>` can be passed wherever a plugin is expected.
macro_rules! forward_through_pointer {
    ($($pointer:ident),+) => {$(
        impl<T: CachePersistence + ?Sized> CachePersistence for $pointer<T> {
            fn describe(&self) -> Description {
                (**self).describe()
            }
            fn load(&self) -> Result<Option<Vec<u8>>> {
                (**self).load()
            }
            fn save(&self, data: &[u8]) -> Result<()> {
                (**self).save(data)
            }
            fn delete(&self) -> Result<bool> {
                (**self).delete()
            }
            fn version(&self) -> Result<Option<ChangeToken>> {
                (**self).version()
            }
            fn lock(&self, wait: Duration) -> Result<LockGuard> {
                (**self).lock(wait)
            }
        }
    )+};
}

forward_through_pointer!(Box, Arc);

/// An opaque token that changes whenever the stored blob changes.
///
/// Only equality is meaningful. Tokens of different slots or plugins are not comparable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChangeToken(String);

impl ChangeToken {
    /// Wraps a plugin's own representation (a counter, an inode and timestamps, a hash).
    pub fn new(token: impl Into<String>) -> Self {
        ChangeToken(token.into())
    }

    /// The plugin's representation, for logs and for the process protocol.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChangeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a plugin is, where it stores, and what it can do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Description {
    /// A short stable name of the backend, e.g. `"file"` or `"secret-service"`.
    pub backend: String,
    /// Where the blob lives, for people: a path, a keyring item description.
    pub location: String,
    /// What the plugin can do; the conformance suite selects its checks by these.
    pub capabilities: Capabilities,
}

impl Description {
    /// A description of `backend` storing at `location`.
    pub fn new(
        backend: impl Into<String>,
        location: impl Into<String>,
        capabilities: Capabilities,
    ) -> Self {
        Description {
            backend: backend.into(),
            location: location.into(),
            capabilities,
        }
    }
}

/// The capabilities a plugin declares. A declared capability is checked; an undeclared one
/// must be refused with [`NotSupported`](crate::ErrorKind::NotSupported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// The blob is encrypted at rest (keyring, DPAPI); nothing under the plugin's
    /// directory contains it in plaintext.
    pub encrypts_at_rest: bool,
    /// [`CachePersistence::lock`] works and excludes every holder that can reach the slot:
    /// other handles and threads, and other processes when the slot is
    /// [`shared_across_processes`](Self::shared_across_processes). A plugin whose slot
    /// only its own process can reach (in memory) declares `true` when its lock excludes
    /// that process's handles and threads. `false` means there is no lock at all, and
    /// `lock` answers [`NotSupported`](crate::ErrorKind::NotSupported).
    pub exclusive_lock: bool,
    /// [`CachePersistence::version`] is supported.
    pub change_detection: bool,
    /// Several processes share the slot (false for a purely in-memory plugin).
    pub shared_across_processes: bool,
    /// The largest blob [`CachePersistence::save`] accepts, if there is a limit.
    pub max_size: Option<usize>,
}

impl Capabilities {
    /// Capabilities of a plugin that declares nothing: no encryption, no lock, no change
    /// detection, one process, no size limit. Plugins switch on what they do.
    pub const fn none() -> Self {
        Capabilities {
            encrypts_at_rest: false,
            exclusive_lock: false,
            change_detection: false,
            shared_across_processes: false,
            max_size: None,
        }
    }

    /// Capabilities of a shared store that does everything: an exclusive lock, change
    /// detection, several processes, no size limit. Encryption at rest is not declared by
    /// default: a plugin that encrypts says so with [`encrypts_at_rest`](Self::encrypts_at_rest).
    pub const fn full() -> Self {
        Capabilities {
            encrypts_at_rest: false,
            exclusive_lock: true,
            change_detection: true,
            shared_across_processes: true,
            max_size: None,
        }
    }

    /// Sets [`Capabilities::encrypts_at_rest`].
    pub const fn encrypts_at_rest(mut self, yes: bool) -> Self {
        self.encrypts_at_rest = yes;
        self
    }

    /// Sets [`Capabilities::exclusive_lock`].
    pub const fn exclusive_lock(mut self, yes: bool) -> Self {
        self.exclusive_lock = yes;
        self
    }

    /// Sets [`Capabilities::change_detection`].
    pub const fn change_detection(mut self, yes: bool) -> Self {
        self.change_detection = yes;
        self
    }

    /// Sets [`Capabilities::shared_across_processes`].
    pub const fn shared_across_processes(mut self, yes: bool) -> Self {
        self.shared_across_processes = yes;
        self
    }

    /// Sets [`Capabilities::max_size`].
    pub const fn max_size(mut self, max: Option<usize>) -> Self {
        self.max_size = max;
        self
    }
}

/// A held lock; the implementation's release runs exactly once, explicitly or on drop.
pub trait HeldLock: Send {
    /// Releases the lock.
    fn release(self: Box<Self>) -> Result<()>;
}

/// Proof of holding a plugin's exclusive lock. Dropping it releases the lock.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    held: Option<Box<dyn HeldLock>>,
}

impl LockGuard {
    /// Wraps a plugin's held lock.
    pub fn new(held: impl HeldLock + 'static) -> Self {
        LockGuard {
            held: Some(Box::new(held)),
        }
    }

    /// Releases the lock now and reports a failure to release, which dropping cannot.
    pub fn release(mut self) -> Result<()> {
        match self.held.take() {
            Some(held) => held.release(),
            None => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(held) = self.held.take()
            && let Err(err) = held.release()
        {
            tracing::warn!(error = %err, "releasing the cache lock failed");
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("held", &self.held.is_some())
            .finish()
    }
}
