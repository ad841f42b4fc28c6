//! A wrapper that makes any plugin fail or slow down on a script.

use std::{
    fmt,
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use identity_cache_persistence::{
    CachePersistence, ChangeToken, Description, Error, ErrorKind, LockGuard, Result,
};

use crate::{operation::Operation, sync::lock};

/// One scripted error: which call of which operation fails, how, and whether it repeats.
///
/// Calls are counted per operation from the moment the fault is added to a [`FaultPlan`]:
/// `nth(1)` (the default) is the next call of that operation, `nth(3)` the third call
/// from now. A one-shot fault fires once and is gone; a
/// [`repeating`](Fault::repeating) one fails that call and every later call of the
/// operation until [`FaultPlan::clear`].
///
/// An injected error returns at once (after the operation's latency, if any): an
/// injected [`LockTimeout`](ErrorKind::LockTimeout) does not wait out the caller's budget
/// unless a latency is set for [`Operation::Lock`].
///
/// ```
/// use identity_cache_mocks::{Fault, Operation};
/// use identity_cache_persistence::ErrorKind;
///
/// // The second save from now, and every save after it, fails as a full disk.
/// let fault = Fault::new(Operation::Save, ErrorKind::StorageFull)
///     .nth(2)
///     .repeating()
///     .message("no space left on device (injected)");
/// # let _ = fault;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    operation: Operation,
    kind: ErrorKind,
    nth: u64,
    repeating: bool,
    message: Option<String>,
}

impl Fault {
    /// The next call of `operation` fails with an error of `kind`, once.
    pub fn new(operation: Operation, kind: ErrorKind) -> Self {
        Fault {
            operation,
            kind,
            nth: 1,
            repeating: false,
            message: None,
        }
    }

    /// The `n`th call from now fails instead of the next one (`n` starts at 1; 0 is read
    /// as 1). The calls before it reach the inner plugin.
    pub fn nth(mut self, n: u64) -> Self {
        self.nth = n.max(1);
        self
    }

    /// The fault fires on its call and on every later call of the operation, until
    /// [`FaultPlan::clear`].
    pub fn repeating(mut self) -> Self {
        self.repeating = true;
        self
    }

    /// The error's message. Without one, it reads
    /// `"injected fault: <operation> call <n> fails with <kind>"`.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// The operation it targets.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The kind of the error it injects.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// The script of a [`FaultyPersistence`]: scripted errors and added latency, per operation.
///
/// A cloneable handle: clones share one script, so a test keeps a clone and adds faults
/// while the plugin is in use, from any thread. Every call of a fallible operation is
/// counted (also calls that fail), which [`calls`](FaultPlan::calls) reports.
///
/// Rules when several things apply to one call:
///
/// - Faults are checked in the order they were added; the first that matches fires.
///   Other one-shot faults aimed at that same call are dropped with it, so a stale fault
///   never fires on a later call than the one it was aimed at.
/// - Latency is added before the call's outcome, also when the call then fails.
#[derive(Clone, Default)]
pub struct FaultPlan {
    state: Arc<Mutex<PlanState>>,
}

#[derive(Default)]
struct PlanState {
    /// Calls made so far, per operation (index: `Operation::index`).
    calls: [u64; 5],
    /// Injected errors so far, per operation.
    fired: [u64; 5],
    latency: [Duration; 5],
    faults: Vec<Armed>,
}

/// A fault bound to an absolute call number of its operation.
struct Armed {
    fault: Fault,
    call: u64,
}

impl Armed {
    fn matches(&self, operation: Operation, call: u64) -> bool {
        self.fault.operation == operation
            && if self.fault.repeating {
                call >= self.call
            } else {
                call == self.call
            }
    }
}

impl FaultPlan {
    /// An empty plan: every call goes through, without delay.
    pub fn new() -> Self {
        FaultPlan::default()
    }

    /// Adds `fault`; its call is counted from now (see [`Fault::nth`]).
    pub fn add(&self, fault: Fault) -> &Self {
        let mut state = lock(&self.state);
        let call = state.calls[fault.operation.index()].saturating_add(fault.nth);
        state.faults.push(Armed { fault, call });
        self
    }

    /// The next call of `operation` fails with `kind`, once.
    pub fn fail_next(&self, operation: Operation, kind: ErrorKind) -> &Self {
        self.add(Fault::new(operation, kind))
    }

    /// The `n`th call of `operation` from now fails with `kind`, once.
    pub fn fail_nth(&self, operation: Operation, n: u64, kind: ErrorKind) -> &Self {
        self.add(Fault::new(operation, kind).nth(n))
    }

    /// The `n`th call of `operation` from now, and every call after it, fails with `kind`.
    pub fn fail_from(&self, operation: Operation, n: u64, kind: ErrorKind) -> &Self {
        self.add(Fault::new(operation, kind).nth(n).repeating())
    }

    /// Every call of `operation` from now sleeps `latency` before it runs (or fails).
    /// `Duration::ZERO` removes the latency.
    pub fn set_latency(&self, operation: Operation, latency: Duration) -> &Self {
        lock(&self.state).latency[operation.index()] = latency;
        self
    }

    /// Removes every fault and every latency; call counts are kept.
    pub fn clear(&self) {
        let mut state = lock(&self.state);
        state.faults.clear();
        state.latency = [Duration::ZERO; 5];
    }

    /// How many calls of `operation` the plugin has received, failed ones included.
    pub fn calls(&self, operation: Operation) -> u64 {
        lock(&self.state).calls[operation.index()]
    }

    /// How many calls of `operation` failed with an injected error.
    pub fn fired(&self, operation: Operation) -> u64 {
        lock(&self.state).fired[operation.index()]
    }

    /// How many faults are still armed (repeating faults stay armed).
    pub fn armed(&self) -> usize {
        lock(&self.state).faults.len()
    }

    /// Counts a call and decides its fate: the latency to add and the error to return
    /// instead of calling the inner plugin.
    fn on_call(&self, operation: Operation) -> (Duration, Option<Error>) {
        let mut state = lock(&self.state);
        let index = operation.index();
        state.calls[index] += 1;
        let call = state.calls[index];
        let latency = state.latency[index];
        let Some(position) = state
            .faults
            .iter()
            .position(|armed| armed.matches(operation, call))
        else {
            return (latency, None);
        };
        let fault = state.faults[position].fault.clone();
        // Drop the fault that fired if it was one-shot, and the one-shots that aimed at
        // this call too (they lost to an earlier fault and cannot fire later).
        state.faults.retain(|armed| {
            armed.fault.repeating || armed.fault.operation != operation || armed.call > call
        });
        state.fired[index] += 1;
        drop(state);

        tracing::debug!(%operation, call, kind = %fault.kind, "injecting a fault");
        let message = fault.message.unwrap_or_else(|| {
            format!(
                "injected fault: {operation} call {call} fails with {}",
                fault.kind
            )
        });
        (latency, Some(Error::new(fault.kind, message)))
    }
}

impl fmt::Debug for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        let faults: Vec<_> = state
            .faults
            .iter()
            .map(|armed| (&armed.fault, armed.call))
            .collect();
        f.debug_struct("FaultPlan")
            .field("calls", &state.calls)
            .field("fired", &state.fired)
            .field("latency", &state.latency)
            .field("faults", &faults)
            .finish()
    }
}

/// Wraps a plugin and fails or delays its calls as a [`FaultPlan`] says.
///
/// Each call of `load`, `save`, `delete`, `version` or `lock` is counted, delayed by the
/// operation's latency, and then either fails with the scripted error or goes to the inner
/// plugin unchanged. [`describe`](CachePersistence::describe) is never counted, delayed or
/// failed (its contract says it never fails), and returns the inner plugin's description,
/// so capability-driven code treats the wrapper like the plugin it wraps.
///
/// **Typed error, nothing lost**: an injected error is returned *instead of* calling the
/// inner plugin. A failed `save` writes nothing, so the previous blob is still stored,
/// exactly as the trait requires of a real failed save; a failed `delete` removes
/// nothing; a failed `lock` takes no lock. The caller sees an error of the scripted
/// [`ErrorKind`] and can retry.
///
/// ```
/// use identity_cache_mocks::{FaultyPersistence, InMemoryPersistence, Operation};
/// use identity_cache_persistence::{CachePersistence, ErrorKind};
///
/// let faulty = FaultyPersistence::new(InMemoryPersistence::new());
/// faulty.save(b"old")?;
/// faulty.plan().fail_nth(Operation::Save, 2, ErrorKind::StorageFull);
///
/// faulty.save(b"first")?;
/// let err = faulty.save(b"second").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::StorageFull);
/// assert_eq!(faulty.load()?.as_deref(), Some(&b"first"[..]), "nothing lost");
/// assert_eq!(faulty.plan().calls(Operation::Save), 3);
/// # Ok::<(), identity_cache_persistence::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FaultyPersistence<P> {
    inner: P,
    plan: FaultPlan,
}

impl<P: CachePersistence> FaultyPersistence<P> {
    /// Wraps `inner` with an empty plan; add faults through [`plan`](Self::plan).
    pub fn new(inner: P) -> Self {
        FaultyPersistence::with_plan(inner, FaultPlan::new())
    }

    /// Wraps `inner` with `plan` (or a clone of a plan the test keeps).
    pub fn with_plan(inner: P, plan: FaultPlan) -> Self {
        FaultyPersistence { inner, plan }
    }

    /// The plan, shared: faults added to it apply to this plugin at once.
    pub fn plan(&self) -> FaultPlan {
        self.plan.clone()
    }

    /// The wrapped plugin, for looking behind the faults.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Unwraps the plugin.
    pub fn into_inner(self) -> P {
        self.inner
    }

    /// Runs `call` on the inner plugin unless the plan says otherwise.
    fn run<T>(&self, operation: Operation, call: impl FnOnce(&P) -> Result<T>) -> Result<T> {
        let (latency, fault) = self.plan.on_call(operation);
        if !latency.is_zero() {
            thread::sleep(latency);
        }
        match fault {
            Some(err) => Err(err),
            None => call(&self.inner),
        }
    }
}

impl<P: CachePersistence> CachePersistence for FaultyPersistence<P> {
    fn describe(&self) -> Description {
        self.inner.describe()
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        self.run(Operation::Load, |inner| inner.load())
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        self.run(Operation::Save, |inner| inner.save(data))
    }

    fn delete(&self) -> Result<bool> {
        self.run(Operation::Delete, |inner| inner.delete())
    }

    fn version(&self) -> Result<Option<ChangeToken>> {
        self.run(Operation::Version, |inner| inner.version())
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        self.run(Operation::Lock, |inner| inner.lock(wait))
    }
}
