//! A `mockall` mock of the plugin trait, for testing code that drives a plugin.
//!
//! Use [`MockCachePersistence`] when the test is about *how* your code calls the plugin:
//! which operations, in which order, how often, and what it does with each answer,
//! including errors no real backend produces on demand. When the test is about *what ends
//! up stored*, [`InMemoryPersistence`](crate::InMemoryPersistence) is usually simpler, and
//! [`FaultyPersistence`](crate::FaultyPersistence) adds scripted errors to it.
//!
//! [`probe_lock`] makes the [`LockGuard`] an expectation on `lock` returns, and tells the
//! test whether the code under test released it.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use identity_cache_persistence::{
    CachePersistence, ChangeToken, Description, HeldLock, LockGuard, Result,
};

mockall::mock! {
    /// A `mockall` mock of [`CachePersistence`].
    ///
    /// Each trait method has an `expect_<method>()` that sets what the mock expects and
    /// answers (`times`, `with`, `returning`, `in_sequence`, ...); see the
    /// [mockall documentation](https://docs.rs/mockall). A call without a matching
    /// expectation panics, and a `times` that was not met panics when the mock is dropped,
    /// so the test fails where the code under test went wrong.
    ///
    /// `Debug` (which the trait requires) is implemented for real, not mocked, so code that
    /// logs the plugin needs no expectation for it.
    ///
    /// # Example
    ///
    /// Code that saves only when the cache changed, checked against the mock:
    ///
    /// ```
    /// use identity_cache_mocks::MockCachePersistence;
    /// use identity_cache_persistence::{CachePersistence, Error, ErrorKind};
    /// use mockall::predicate::eq;
    ///
    /// // The code under test: writes `new` unless it is already stored.
    /// fn save_if_changed(p: &dyn CachePersistence, new: &[u8]) -> Result<bool, Error> {
    ///     if p.load()?.as_deref() == Some(new) {
    ///         return Ok(false);
    ///     }
    ///     p.save(new)?;
    ///     Ok(true)
    /// }
    ///
    /// let mut mock = MockCachePersistence::new();
    /// mock.expect_load().times(1).returning(|| Ok(Some(b"old".to_vec())));
    /// mock.expect_save()
    ///     .with(eq(&b"new"[..]))
    ///     .times(1)
    ///     .returning(|_| Err(Error::new(ErrorKind::StorageFull, "disk full")));
    ///
    /// let err = save_if_changed(&mock, b"new").unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::StorageFull);
    /// ```
    pub CachePersistence {}

    impl CachePersistence for CachePersistence {
        fn describe(&self) -> Description;
        fn load(&self) -> Result<Option<Vec<u8>>>;
        fn save(&self, data: &[u8]) -> Result<()>;
        fn delete(&self) -> Result<bool>;
        fn version(&self) -> Result<Option<ChangeToken>>;
        fn lock(&self, wait: Duration) -> Result<LockGuard>;
    }
}

// Written by hand rather than mocked: a mocked `fmt` would need an expectation in every
// test whose code under test happens to log the plugin.
impl fmt::Debug for MockCachePersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockCachePersistence")
            .finish_non_exhaustive()
    }
}

/// A [`LockGuard`] that holds nothing, and a [`LockProbe`] that sees it released.
///
/// For `expect_lock().returning(...)` on [`MockCachePersistence`]: hand out the guard and
/// keep the probe, then assert that the code under test released the lock (by dropping
/// the guard or calling [`LockGuard::release`]) when it should.
///
/// ```
/// use identity_cache_mocks::{MockCachePersistence, probe_lock};
/// use identity_cache_persistence::CachePersistence;
/// use std::{sync::Mutex, time::Duration};
///
/// let (guard, probe) = probe_lock();
/// let guard = Mutex::new(Some(guard));
/// let mut mock = MockCachePersistence::new();
/// mock.expect_lock().times(1).returning(move |_| {
///     Ok(guard.lock().unwrap().take().expect("lock taken once"))
/// });
///
/// {
///     let _held = mock.lock(Duration::from_secs(1))?;
///     assert!(probe.is_held());
/// }
/// assert!(!probe.is_held());
/// assert_eq!(probe.releases(), 1);
/// # Ok::<(), identity_cache_persistence::Error>(())
/// ```
pub fn probe_lock() -> (LockGuard, LockProbe) {
    let releases = Arc::new(AtomicUsize::new(0));
    let guard = LockGuard::new(ProbeHeld {
        releases: Arc::clone(&releases),
    });
    (guard, LockProbe { releases })
}

/// Watches the guard made by [`probe_lock`].
#[derive(Debug, Clone)]
pub struct LockProbe {
    releases: Arc<AtomicUsize>,
}

impl LockProbe {
    /// Whether the guard has not been released yet.
    pub fn is_held(&self) -> bool {
        self.releases() == 0
    }

    /// How many times the guard's release ran: 0 while held, then 1. More than 1 would
    /// mean [`LockGuard`] broke its "exactly once" promise.
    pub fn releases(&self) -> usize {
        self.releases.load(Ordering::SeqCst)
    }
}

struct ProbeHeld {
    releases: Arc<AtomicUsize>,
}

impl HeldLock for ProbeHeld {
    fn release(self: Box<Self>) -> Result<()> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl fmt::Debug for ProbeHeld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeHeld").finish_non_exhaustive()
    }
}
