//! A wrapper whose every call waits until the test lets it through.
//!
//! Modelled on tower-test's `mock::pair`: the plugin and a [`GateHandle`] are made
//! together; the code under test calls the plugin, each call stops at the gate, and the
//! test takes the calls from the handle one by one and releases or fails each. The test,
//! not the scheduler, decides the order in which concurrent callers reach the plugin.
//!
//! The plumbing is channels, chosen so that nothing can hang once the test lets go: a call
//! whose [`PendingCall`] is dropped goes through, and so does every call, waiting or
//! future, once the [`GateHandle`] is dropped (dropping the receiving end of a channel
//! drops the messages still queued in it, and with them the senders the calls wait on).

use std::{
    fmt,
    sync::mpsc::{self, RecvTimeoutError},
    thread,
    time::Duration,
};

use identity_cache_persistence::{
    CachePersistence, ChangeToken, Description, Error, ErrorKind, LockGuard, Result,
};

use crate::operation::Operation;

/// Wraps a plugin so that each call waits at a gate until the [`GateHandle`] releases it.
///
/// - `load`, `save`, `delete`, `version` and `lock` each stop at the gate; the handle
///   sees them in arrival order as [`PendingCall`]s. Released, the call runs on the inner
///   plugin; failed, it returns the test's error and the inner plugin is not called
///   (a failed save writes nothing).
/// - [`describe`](CachePersistence::describe) never waits: it is cheap and never fails,
///   and code often calls it while setting up.
/// - Dropping a [`PendingCall`] without a decision releases that call; dropping the
///   [`GateHandle`] releases every call the test has not taken yet and opens the gate for
///   good (a call the test has taken stays with its `PendingCall`). A test that fails
///   half-way unwinds both, so it never leaves a thread blocked at the gate.
/// - Dropping a [`LockGuard`] is not a call and is not gated.
///
/// Share the plugin between threads with an [`Arc`](std::sync::Arc).
///
/// ```
/// use identity_cache_mocks::{GatedPersistence, InMemoryPersistence, Operation};
/// use identity_cache_persistence::CachePersistence;
/// use std::{sync::Arc, thread, time::Duration};
///
/// let (gated, gate) = GatedPersistence::new(InMemoryPersistence::new());
/// let gated = Arc::new(gated);
/// let timeout = Duration::from_secs(5);
///
/// let writer = thread::spawn({
///     let gated = Arc::clone(&gated);
///     move || gated.save(b"new")
/// });
/// let save = gate.expect_call(Operation::Save, timeout);
/// assert_eq!(save.data(), Some(&b"new"[..]));
///
/// // The save is held at the gate: a load let through now still sees nothing.
/// let reader = thread::spawn({
///     let gated = Arc::clone(&gated);
///     move || gated.load()
/// });
/// gate.expect_call(Operation::Load, timeout).release();
/// assert_eq!(reader.join().unwrap()?, None);
///
/// assert!(save.release().wait(timeout));
/// writer.join().unwrap()?;
/// drop(gate); // opens the gate
/// assert_eq!(gated.load()?.as_deref(), Some(&b"new"[..]));
/// # Ok::<(), identity_cache_persistence::Error>(())
/// ```
pub struct GatedPersistence<P> {
    inner: P,
    gate: mpsc::Sender<Arrival>,
}

impl<P: CachePersistence> GatedPersistence<P> {
    /// Wraps `inner`; the handle controls the gate.
    pub fn new(inner: P) -> (Self, GateHandle) {
        let (gate, arrivals) = mpsc::channel();
        (GatedPersistence { inner, gate }, GateHandle { arrivals })
    }

    /// The wrapped plugin, to look behind the gate without waiting.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Waits at the gate, then runs `call` on the inner plugin or returns the test's error.
    fn run<T>(
        &self,
        operation: Operation,
        data: Option<&[u8]>,
        wait: Option<Duration>,
        call: impl FnOnce(&P) -> Result<T>,
    ) -> Result<T> {
        let (decide, decision) = mpsc::channel();
        let (done, completion) = mpsc::channel::<()>();
        let arrival = Arrival {
            operation,
            data: data.map(<[u8]>::to_vec),
            wait,
            thread: thread::current().name().map(str::to_owned),
            decide,
            completion,
        };
        // A failed send means the handle is gone: the gate is open.
        if self.gate.send(arrival).is_ok() {
            // `Err` means the PendingCall (or the handle holding it) was dropped: go through.
            if let Ok(Decision::Fail(err)) = decision.recv() {
                return Err(err);
            }
        }
        let result = call(&self.inner);
        // Tells a waiting `Completion` that the inner call has returned.
        drop(done);
        result
    }
}

impl<P: CachePersistence> CachePersistence for GatedPersistence<P> {
    fn describe(&self) -> Description {
        self.inner.describe()
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        self.run(Operation::Load, None, None, |inner| inner.load())
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        self.run(Operation::Save, Some(data), None, |inner| inner.save(data))
    }

    fn delete(&self) -> Result<bool> {
        self.run(Operation::Delete, None, None, |inner| inner.delete())
    }

    fn version(&self) -> Result<Option<ChangeToken>> {
        self.run(Operation::Version, None, None, |inner| inner.version())
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        self.run(Operation::Lock, None, Some(wait), |inner| inner.lock(wait))
    }
}

impl<P: fmt::Debug> fmt::Debug for GatedPersistence<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedPersistence")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// A call waiting at the gate, as sent to the handle.
struct Arrival {
    operation: Operation,
    data: Option<Vec<u8>>,
    wait: Option<Duration>,
    thread: Option<String>,
    decide: mpsc::Sender<Decision>,
    /// Disconnects when the call has returned.
    completion: mpsc::Receiver<()>,
}

enum Decision {
    Release,
    Fail(Error),
}

/// The test's end of a [`GatedPersistence`]: takes the waiting calls, one at a time.
///
/// Dropping the handle (or [`open`](GateHandle::open)) releases every call not taken yet
/// and lets all later calls straight through. Calls already taken as [`PendingCall`]s
/// wait for their own release, failure or drop.
pub struct GateHandle {
    arrivals: mpsc::Receiver<Arrival>,
}

impl GateHandle {
    /// The next call to arrive at the gate (or that is already waiting), or `None` if no
    /// call arrives within `timeout`. The call waits until the returned [`PendingCall`]
    /// is released, failed or dropped.
    pub fn next_call(&self, timeout: Duration) -> Option<PendingCall> {
        let arrival = self.arrivals.recv_timeout(timeout).ok()?;
        Some(PendingCall { arrival })
    }

    /// The next call, which must be `operation`.
    ///
    /// # Panics
    ///
    /// If no call arrives within `timeout`, or the call is another operation (that call is
    /// released as the panic unwinds, so the code under test is not left waiting).
    #[track_caller]
    pub fn expect_call(&self, operation: Operation, timeout: Duration) -> PendingCall {
        match self.next_call(timeout) {
            Some(call) if call.operation() == operation => call,
            Some(call) => panic!(
                "expected a {operation} call at the gate, but the next call was {:?}",
                call
            ),
            None => panic!("expected a {operation} call at the gate, none arrived in {timeout:?}"),
        }
    }

    /// Checks that no call arrives within `within`.
    ///
    /// # Panics
    ///
    /// If a call arrives (that call is released as the panic unwinds).
    #[track_caller]
    pub fn expect_no_call(&self, within: Duration) {
        if let Some(call) = self.next_call(within) {
            panic!("expected no call at the gate within {within:?}, got {call:?}");
        }
    }

    /// Opens the gate for good: releases every call not taken yet and lets later calls
    /// through.
    /// The same as dropping the handle, spelled out for tests that want to say so.
    pub fn open(self) {}
}

impl fmt::Debug for GateHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateHandle").finish_non_exhaustive()
    }
}

/// One call waiting at the gate; release it, fail it, or drop it (which releases it).
pub struct PendingCall {
    arrival: Arrival,
}

impl PendingCall {
    /// Which operation the call is.
    pub fn operation(&self) -> Operation {
        self.arrival.operation
    }

    /// The blob a `save` wants to write; `None` for other operations.
    pub fn data(&self) -> Option<&[u8]> {
        self.arrival.data.as_deref()
    }

    /// The wait budget a `lock` asked for; `None` for other operations. The budget starts
    /// when the call is released: time spent at the gate is not counted.
    pub fn lock_wait(&self) -> Option<Duration> {
        self.arrival.wait
    }

    /// The name of the thread that made the call, if it has one; handy to tell two
    /// callers of the same operation apart.
    pub fn thread_name(&self) -> Option<&str> {
        self.arrival.thread.as_deref()
    }

    /// Lets the call through to the inner plugin.
    pub fn release(self) -> Completion {
        self.decide(Decision::Release)
    }

    /// Fails the call with an error of `kind`; the inner plugin is not called.
    pub fn fail(self, kind: ErrorKind) -> Completion {
        let message = format!("{} failed at the gate with {kind}", self.operation());
        self.fail_with(Error::new(kind, message))
    }

    /// Fails the call with `err`; the inner plugin is not called.
    pub fn fail_with(self, err: Error) -> Completion {
        self.decide(Decision::Fail(err))
    }

    fn decide(self, decision: Decision) -> Completion {
        let Arrival {
            decide, completion, ..
        } = self.arrival;
        // A send error means the calling thread is gone (it panicked); nothing to do.
        let _ = decide.send(decision);
        Completion { completion }
    }
}

impl fmt::Debug for PendingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The blob is a secret: its length only.
        f.debug_struct("PendingCall")
            .field("operation", &self.arrival.operation)
            .field("data_len", &self.arrival.data.as_ref().map(Vec::len))
            .field("lock_wait", &self.arrival.wait)
            .field("thread", &self.arrival.thread)
            .finish()
    }
}

/// Tells when a released or failed call has returned to its caller.
///
/// For ordering steps: release a save, [`wait`](Completion::wait) until it is done, then
/// release the load that must see it.
pub struct Completion {
    completion: mpsc::Receiver<()>,
}

impl Completion {
    /// Waits at most `timeout` for the call to return; `true` if it has.
    pub fn wait(&self, timeout: Duration) -> bool {
        matches!(
            self.completion.recv_timeout(timeout),
            Err(RecvTimeoutError::Disconnected) | Ok(())
        )
    }

    /// Whether the call has returned, without waiting.
    pub fn is_done(&self) -> bool {
        self.wait(Duration::ZERO)
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("done", &self.is_done())
            .finish()
    }
}
