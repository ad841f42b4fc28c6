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

/// What this plugin last read or wrote, and the change token it had then.
#[derive(Default)]
struct Snapshot {
    /// `None` when the persistence cannot detect changes; `Some(None)` when it reported
    /// that nothing was stored.
    token: Option<Option<ChangeToken>>,
    data: Option<Vec<u8>>,
    valid: bool,
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
        let token = self.change_token()?;
        let unchanged = snapshot.valid && token.is_some() && snapshot.token == token;
        if unchanged {
            tracing::trace!("token cache unchanged since last access");
        } else {
            tracing::debug!("reloading the token cache");
            snapshot.valid = false;
            snapshot.data = self.persistence.load()?;
            snapshot.token = token;
            snapshot.valid = true;
        }
        let data = snapshot.data.clone();
        drop(snapshot);
        Ok(CacheAccess {
            plugin: self,
            guard,
            data,
            changed: false,
        })
    }

    /// Runs `f` on the current blob under the lock; saves what `f` leaves when it changed
    /// the blob (`None` stays "nothing to save").
    pub fn update<R>(&self, f: impl FnOnce(&mut Option<Vec<u8>>) -> R) -> Result<R> {
        let mut access = self.begin()?;
        let mut data = access.data.clone();
        let result = f(&mut data);
        if data != access.data
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

    /// The current change token; `None` when the persistence cannot detect changes.
    fn change_token(&self) -> Result<Option<Option<ChangeToken>>> {
        match self.persistence.version() {
            Ok(token) => Ok(Some(token)),
            Err(e) if e.kind() == ErrorKind::NotSupported => Ok(None),
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
    guard: LockGuard,
    data: Option<Vec<u8>>,
    changed: bool,
}

impl<P: CachePersistence> CacheAccess<'_, P> {
    /// The blob as stored; `None` when nothing is stored.
    pub fn data(&self) -> Option<&[u8]> {
        self.data.as_deref()
    }

    /// Replaces the blob; it is saved by [`commit`](Self::commit).
    pub fn set_data(&mut self, data: Vec<u8>) {
        self.data = Some(data);
        self.changed = true;
    }

    /// Whether [`set_data`](Self::set_data) was called.
    pub fn has_changed(&self) -> bool {
        self.changed
    }

    /// After access: saves the blob when it was replaced, then releases the lock.
    ///
    /// On a failed save the stored blob is the one from before this access, and the error
    /// is returned after the lock is released.
    pub fn commit(self) -> Result<()> {
        let CacheAccess {
            plugin,
            guard,
            data,
            changed,
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
        snapshot.token = self.change_token()?;
        snapshot.data = Some(data);
        snapshot.valid = true;
        Ok(())
    }
}

impl<P: CachePersistence> fmt::Debug for CacheAccess<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheAccess")
            .field("len", &self.data.as_ref().map(Vec::len))
            .field("changed", &self.changed)
            .finish_non_exhaustive()
    }
}
