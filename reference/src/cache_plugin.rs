//! [`CachePlugin`]: drives a persistence the way MSAL's cache hooks do.

use std::{
    fmt,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use crate::{
    error::{ErrorKind, Result},
    persistence::{CachePersistence, ChangeToken, LockGuard},
};

/// Keeps an in-memory copy of the cache blob in step with a [`CachePersistence`].
///
/// Every access, read or write, runs under the persistence's exclusive lock:
///
/// 1. *Before access* ([`CachePlugin::begin`]): take the lock (waiting at most the lock
///    wait budget), read the change token, and reload the blob only when the token moved
///    since this plugin last loaded or saved it (always, when the persistence cannot
///    detect changes).
/// 2. The caller reads the blob and may replace it ([`CacheAccess::set_data`]).
/// 3. *After access* ([`CacheAccess::commit`]): save when the blob was replaced, then
///    release the lock. Dropping a [`CacheAccess`] without committing releases the lock
///    and discards the change.
///
/// The blob is opaque: the bytes the caller sets are the bytes saved, and the bytes
/// loaded are the bytes the caller sees.
pub struct CachePlugin<P> {
    persistence: P,
    lock_wait: Duration,
    snapshot: Mutex<Snapshot>,
}

/// What this plugin last read or wrote, and the persistence's version then.
#[derive(Default)]
struct Snapshot {
    version: Version,
    data: Option<Vec<u8>>,
    /// False until the first load, and while a save is under way (a failed save leaves
    /// the stored blob unknown).
    valid: bool,
    /// Moves whenever `data` is replaced; see [`CacheAccess::generation`].
    generation: u64,
}

/// The persistence's change token, as this plugin saw it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum Version {
    /// The persistence cannot detect changes: every access reloads.
    #[default]
    Undetectable,
    /// Nothing was stored.
    Nothing,
    /// This token.
    Token(ChangeToken),
}

impl Version {
    fn of(token: Option<ChangeToken>) -> Self {
        token.map_or(Version::Nothing, Version::Token)
    }
}

impl<P: CachePersistence> CachePlugin<P> {
    /// The default lock wait budget: long enough for a peer's slow save, short enough
    /// that a stuck peer is reported rather than waited on forever.
    pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);

    /// A plugin over `persistence` with the default lock wait budget.
    pub fn new(persistence: P) -> Self {
        CachePlugin {
            persistence,
            lock_wait: Self::DEFAULT_LOCK_WAIT,
            snapshot: Mutex::new(Snapshot::default()),
        }
    }

    /// Sets how long [`begin`](Self::begin) waits for the lock before failing with
    /// [`LockTimeout`](ErrorKind::LockTimeout).
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The persistence this plugin drives.
    pub fn persistence(&self) -> &P {
        &self.persistence
    }

    /// Before access: takes the lock and brings the in-memory blob up to date.
    ///
    /// Fails when the lock is not acquired in time or the blob cannot be loaded; the lock
    /// is not held after a failure.
    pub fn begin(&self) -> Result<CacheAccess<'_, P>> {
        let guard = self.persistence.lock(self.lock_wait)?;
        let mut snapshot = self.snapshot();
        let version = self.version()?;
        let unchanged =
            snapshot.valid && version != Version::Undetectable && snapshot.version == version;
        if unchanged {
            tracing::trace!("token cache unchanged since last access");
        } else {
            tracing::debug!("reloading the token cache");
            snapshot.valid = false;
            snapshot.data = self.persistence.load()?;
            snapshot.version = version;
            snapshot.generation += 1;
            snapshot.valid = true;
        }
        let held = DetachedAccess {
            guard,
            data: snapshot.data.clone(),
            changed: false,
            generation: snapshot.generation,
        };
        drop(snapshot);
        Ok(self.resume(held))
    }

    /// Attaches an access that was [detached](CacheAccess::detach) from this plugin again,
    /// to save through it. An access detached from another plugin must not be resumed
    /// here: its blob would be saved over this plugin's persistence.
    pub fn resume(&self, held: DetachedAccess) -> CacheAccess<'_, P> {
        CacheAccess { plugin: self, held }
    }

    /// Runs `f` on the current blob under the lock; saves what `f` leaves when it changed
    /// the blob (`None` stays "nothing to save").
    pub fn update<R>(&self, f: impl FnOnce(&mut Option<Vec<u8>>) -> R) -> Result<R> {
        let mut access = self.begin()?;
        let mut data = access.held.data.clone();
        let result = f(&mut data);
        if data != access.held.data
            && let Some(data) = data
        {
            access.set_data(data);
        }
        access.commit()?;
        Ok(result)
    }

    /// Runs `f` on the current blob under the lock, without saving.
    pub fn read<R>(&self, f: impl FnOnce(Option<&[u8]>) -> R) -> Result<R> {
        let access = self.begin()?;
        let result = f(access.data());
        access.commit()?;
        Ok(result)
    }

    /// The persistence's current version.
    fn version(&self) -> Result<Version> {
        match self.persistence.version() {
            Ok(token) => Ok(Version::of(token)),
            Err(e) if e.kind() == ErrorKind::NotSupported => Ok(Version::Undetectable),
            Err(e) => Err(e),
        }
    }

    fn snapshot(&self) -> MutexGuard<'_, Snapshot> {
        // A panic while holding the snapshot can only leave it stale, and `valid` guards
        // against using stale data, so a poisoned mutex is safe to reuse.
        self.snapshot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<P: CachePersistence> fmt::Debug for CachePlugin<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachePlugin")
            .field("persistence", &self.persistence)
            .field("lock_wait", &self.lock_wait)
            .finish_non_exhaustive()
    }
}

/// One access to the cache under the lock; see [`CachePlugin`].
#[must_use = "dropping the access releases the lock and discards changes; call commit"]
pub struct CacheAccess<'a, P: CachePersistence> {
    plugin: &'a CachePlugin<P>,
    held: DetachedAccess,
}

/// An access detached from its plugin ([`CacheAccess::detach`]): the lock stays held and
/// the blob with it, with no borrow, so that it can cross an `await` or another thread.
/// [`CachePlugin::resume`] attaches it again; dropping it releases the lock and discards
/// changes.
#[must_use = "dropping it releases the lock and discards changes; resume and commit it"]
pub struct DetachedAccess {
    guard: LockGuard,
    data: Option<Vec<u8>>,
    changed: bool,
    generation: u64,
}

impl DetachedAccess {
    /// The blob as stored; `None` when nothing is stored.
    pub fn data(&self) -> Option<&[u8]> {
        self.data.as_deref()
    }

    /// See [`CacheAccess::generation`].
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl fmt::Debug for DetachedAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DetachedAccess")
            .field("len", &self.data.as_ref().map(Vec::len))
            .field("changed", &self.changed)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl<P: CachePersistence> CacheAccess<'_, P> {
    /// The blob as stored; `None` when nothing is stored.
    pub fn data(&self) -> Option<&[u8]> {
        self.held.data()
    }

    /// Which content [`data`](Self::data) is: the number stays the same for as long as
    /// the plugin neither reloads the blob (another process changed it) nor saves a new
    /// one, so that what a caller derived from the blob (a parsed document) can be reused
    /// while it is the same, with no copy of the blob to compare.
    pub fn generation(&self) -> u64 {
        self.held.generation
    }

    /// Replaces the blob; it is saved by [`commit`](Self::commit).
    pub fn set_data(&mut self, data: Vec<u8>) {
        self.held.data = Some(data);
        self.held.changed = true;
    }

    /// Whether [`set_data`](Self::set_data) was called.
    pub fn has_changed(&self) -> bool {
        self.held.changed
    }

    /// Keeps the lock and the blob without borrowing the plugin; see [`DetachedAccess`].
    pub fn detach(self) -> DetachedAccess {
        self.held
    }

    /// After access: saves the blob when it was replaced, then releases the lock.
    ///
    /// On a failed save the stored blob is the one from before this access, and the error
    /// is returned after the lock is released.
    pub fn commit(self) -> Result<()> {
        let CacheAccess {
            plugin,
            held:
                DetachedAccess {
                    guard,
                    data,
                    changed,
                    ..
                },
        } = self;
        let saved = match (changed, data) {
            (true, Some(data)) => plugin.save_and_remember(data),
            _ => Ok(()),
        };
        let released = guard.release();
        saved.and(released)
    }
}

impl<P: CachePersistence> CachePlugin<P> {
    fn save_and_remember(&self, data: Vec<u8>) -> Result<()> {
        let mut snapshot = self.snapshot();
        snapshot.valid = false;
        self.persistence.save(&data)?;
        snapshot.version = self.version()?;
        snapshot.data = Some(data);
        snapshot.generation += 1;
        snapshot.valid = true;
        Ok(())
    }
}

impl<P: CachePersistence> fmt::Debug for CacheAccess<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheAccess")
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}
