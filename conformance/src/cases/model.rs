//! `model`: random sequences of operations on two handles of one slot, checked step by
//! step against a reference model (proptest-state-machine), shrunk to a minimal failing
//! sequence when one breaks.

use std::{fmt, sync::Arc, time::Duration};

use identity_cache_persistence::{CachePersistence, ChangeToken, ErrorKind, LockGuard};
use proptest::{
    prelude::*,
    test_runner::{
        Config as ProptestConfig, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
    },
};
use proptest_state_machine::ReferenceStateMachine;

use crate::{blob, case::Case, ctx::Ctx, failure::Stop};

/// Handles per sequence: two, so that sequences also check what one handle sees of the other.
pub const HANDLES: usize = 2;
/// Longest generated sequence: long, because starting a sequence (fresh handles) is what
/// costs for plugins served out of process; shrinking cuts failures down anyway.
pub const MAX_STEPS: usize = 40;

/// The model cases.
pub const CASES: &[Case] = &[Case {
    name: "model::sequences_match_model",
    rule: "every sequence of save/load/delete/version/lock on two handles gives the results of the reference model",
    needs: &[],
    run: sequences_match_model,
}];

/// One step of a generated sequence. Blobs print as length and hash.
#[derive(Clone, PartialEq, Eq)]
pub enum Step {
    /// `save(data)` on a handle.
    Save(usize, Vec<u8>),
    /// `load()` on a handle.
    Load(usize),
    /// `delete()` on a handle.
    Delete(usize),
    /// `version()` on a handle.
    Version(usize),
    /// `lock()` on a handle while the lock is free: granted.
    Lock(usize),
    /// `lock()` with a short wait while the lock is held: `LockTimeout`.
    TryLock(usize),
    /// Drop the held guard.
    Unlock,
    /// Replace a handle with a new one from the factory (while the lock is free).
    Reopen(usize),
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Save(h, data) => write!(f, "h{h}.save({})", blob::describe(data)),
            Step::Load(h) => write!(f, "h{h}.load()"),
            Step::Delete(h) => write!(f, "h{h}.delete()"),
            Step::Version(h) => write!(f, "h{h}.version()"),
            Step::Lock(h) => write!(f, "h{h}.lock()"),
            Step::TryLock(h) => write!(f, "h{h}.lock(short wait) while held"),
            Step::Unlock => write!(f, "drop lock guard"),
            Step::Reopen(h) => write!(f, "h{h} = factory.create(same namespace)"),
        }
    }
}

/// The reference model: what is stored, whether the lock is held, and a generation that
/// counts saves and deletes (the change token must move exactly when it does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelState {
    /// The stored blob.
    pub stored: Option<Vec<u8>>,
    /// The lock is held (by a guard of the sequence).
    pub locked: bool,
    /// Saves and deletes so far.
    pub generation: u64,
}

/// The [`ReferenceStateMachine`] generating [`Step`]s.
#[derive(Debug, Clone, Copy)]
pub struct CacheModel;

fn blob_strategy() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        // Same-size blobs are common, so token checks meet saves that change no size.
        3 => (any::<u8>(), 1usize..4).prop_map(|(b, n)| vec![b; n * 8]),
        4 => proptest::collection::vec(any::<u8>(), 0..48),
    ]
    .boxed()
}

impl ReferenceStateMachine for CacheModel {
    type State = ModelState;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<ModelState> {
        Just(ModelState::default()).boxed()
    }

    fn transitions(state: &ModelState) -> BoxedStrategy<Step> {
        let handle = 0..HANDLES;
        let common = prop_oneof![
            4 => (handle.clone(), blob_strategy()).prop_map(|(h, d)| Step::Save(h, d)),
            4 => handle.clone().prop_map(Step::Load),
            2 => handle.clone().prop_map(Step::Delete),
            3 => handle.clone().prop_map(Step::Version),
        ];
        if state.locked {
            prop_oneof![
                8 => common,
                1 => handle.prop_map(Step::TryLock),
                2 => Just(Step::Unlock),
            ]
            .boxed()
        } else {
            prop_oneof![
                8 => common,
                2 => handle.clone().prop_map(Step::Lock),
                1 => handle.prop_map(Step::Reopen),
            ]
            .boxed()
        }
    }

    fn preconditions(state: &ModelState, step: &Step) -> bool {
        match step {
            Step::Lock(_) | Step::Reopen(_) => !state.locked,
            Step::TryLock(_) | Step::Unlock => state.locked,
            _ => true,
        }
    }

    fn apply(mut state: ModelState, step: &Step) -> ModelState {
        match step {
            Step::Save(_, data) => {
                state.stored = Some(data.clone());
                state.generation += 1;
            }
            Step::Delete(_) => {
                if state.stored.take().is_some() {
                    state.generation += 1;
                }
            }
            Step::Lock(_) => state.locked = true,
            Step::Unlock => state.locked = false,
            Step::Load(_) | Step::Version(_) | Step::TryLock(_) | Step::Reopen(_) => {}
        }
        state
    }
}

/// The system under test during one sequence.
struct Sut<'c> {
    ctx: &'c Ctx,
    ns: crate::Namespace,
    handles: Vec<Arc<dyn CachePersistence>>,
    guard: Option<LockGuard>,
    /// Tokens observed, with the model generation they were observed at.
    tokens: Vec<(u64, ChangeToken)>,
}

impl Sut<'_> {
    /// Applies `step` to the plugin and compares with `model` (the state before the step).
    fn step(&mut self, model: &ModelState, step: &Step) -> Result<(), String> {
        let caps = *self.ctx.caps();
        match step {
            Step::Save(h, data) => self.handles[*h]
                .save(data)
                .map_err(|e| format!("save failed: {}", blob::describe_error(&e))),
            Step::Load(h) => match self.handles[*h].load() {
                Ok(got) if got == model.stored => Ok(()),
                other => Err(format!(
                    "load returned {}, model holds {}",
                    blob::describe_result(&other.map(|o| blob::describe_loaded(&o))),
                    blob::describe_loaded(&model.stored)
                )),
            },
            Step::Delete(h) => match self.handles[*h].delete() {
                Ok(got) if got == model.stored.is_some() => Ok(()),
                other => Err(format!(
                    "delete returned {}, model expects Ok({})",
                    blob::describe_result(&other),
                    model.stored.is_some()
                )),
            },
            Step::Version(h) => {
                let result = self.handles[*h].version();
                if !caps.change_detection {
                    return match result {
                        Err(e) if e.kind() == ErrorKind::NotSupported => Ok(()),
                        other => Err(format!(
                            "version returned {}, expected NotSupported (no change detection declared)",
                            blob::describe_result(&other)
                        )),
                    };
                }
                match result {
                    Ok(None) if model.stored.is_none() => Ok(()),
                    Ok(Some(token)) if model.stored.is_some() => {
                        for (generation, seen) in &self.tokens {
                            let same_generation = *generation == model.generation;
                            if same_generation && *seen != token {
                                return Err(format!(
                                    "token {token} moved without a save or delete (was {seen})"
                                ));
                            }
                            if !same_generation && *seen == token {
                                return Err(format!(
                                    "token {token} did not move across a save or delete"
                                ));
                            }
                        }
                        self.tokens.push((model.generation, token));
                        Ok(())
                    }
                    other => Err(format!(
                        "version returned {}, model holds {}",
                        blob::describe_result(&other),
                        blob::describe_loaded(&model.stored)
                    )),
                }
            }
            Step::Lock(h) => {
                let result = self.timed_lock(*h, Duration::from_secs(5))?;
                match (caps.exclusive_lock, result) {
                    (true, Ok(guard)) => {
                        self.guard = Some(guard);
                        Ok(())
                    }
                    (false, Err(e)) if e.kind() == ErrorKind::NotSupported => Ok(()),
                    (true, Err(e)) => Err(format!(
                        "lock of the free lock failed: {}",
                        blob::describe_error(&e)
                    )),
                    (false, other) => Err(format!(
                        "lock returned {}, expected NotSupported (no lock declared)",
                        blob::describe_result(&other.map(|_| ()))
                    )),
                }
            }
            Step::TryLock(h) => {
                let result = self.timed_lock(*h, Duration::from_millis(20))?;
                let expected = if caps.exclusive_lock {
                    ErrorKind::LockTimeout
                } else {
                    ErrorKind::NotSupported
                };
                match result {
                    Err(e) if e.kind() == expected => Ok(()),
                    other => Err(format!(
                        "lock returned {}, expected {expected}",
                        blob::describe_result(&other.map(|_| ()))
                    )),
                }
            }
            Step::Unlock => {
                self.guard = None;
                Ok(())
            }
            Step::Reopen(h) => {
                self.handles[*h] = self
                    .ctx
                    .factory()
                    .create(&self.ns)
                    .map(Arc::from)
                    .map_err(|e| format!("factory.create failed: {}", blob::describe_error(&e)))?;
                Ok(())
            }
        }
    }

    fn timed_lock(
        &self,
        h: usize,
        wait: Duration,
    ) -> Result<identity_cache_persistence::Result<LockGuard>, String> {
        let p = Arc::clone(&self.handles[h]);
        crate::ctx::watchdog(wait + Duration::from_secs(10), move || p.lock(wait))
            .map_err(|_| format!("lock({wait:?}) hangs"))
    }
}

/// Runs `config.cases` generated sequences (seeded from the run seed) against the plugin.
pub fn sequences_match_model(ctx: &Ctx) -> Result<(), Stop> {
    let config = ProptestConfig {
        cases: ctx.config().cases,
        // A library suite must not write regression files next to its caller's sources.
        failure_persistence: None,
        max_shrink_iters: if ctx.thorough() { 4096 } else { 512 },
        ..ProptestConfig::default()
    };
    let mut seed = [0u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(ctx.config().seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes(),
        );
    }
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let strategy = CacheModel::sequential_strategy(1..MAX_STEPS);
    let result = runner.run(&strategy, |(initial, steps, seen)| {
        let ns = ctx
            .namespace()
            .map_err(|f| TestCaseError::fail(stopped(f)))?;
        // Created side by side: for plugins served out of process, starting the processes
        // dominates the run time of a sequence.
        let created: Vec<_> = std::thread::scope(|s| {
            let makers: Vec<_> = (0..HANDLES).map(|_| s.spawn(|| ctx.plugin(&ns))).collect();
            makers
                .into_iter()
                .map(|m| {
                    m.join().unwrap_or_else(|_| {
                        Err(ctx.fail("the factory does not panic", "it panicked"))
                    })
                })
                .collect()
        });
        let mut handles = Vec::new();
        for handle in created {
            handles.push(handle.map_err(|f| TestCaseError::fail(stopped(f)))?);
        }
        let mut sut = Sut {
            ctx,
            ns,
            handles,
            guard: None,
            tokens: Vec::new(),
        };
        let mut model = initial;
        let mut outcome = Ok(());
        for (i, step) in steps.iter().enumerate() {
            if let Some(seen) = &seen {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            if let Err(why) = sut.step(&model, step) {
                outcome = Err(TestCaseError::fail(format!(
                    "step {} ({step:?}): {why}",
                    i + 1
                )));
                break;
            }
            model = CacheModel::apply(model, step);
        }
        sut.guard = None;
        if sut.handles[0].delete().is_ok() {
            ctx.cleaned(&sut.ns);
        }
        outcome
    });
    match result {
        Ok(()) => Ok(()),
        Err(TestError::Fail(reason, (_, steps, _))) => {
            let listing: Vec<String> = steps
                .iter()
                .enumerate()
                .map(|(i, s)| format!("  {}. {s:?}", i + 1))
                .collect();
            Err(ctx.fail(
                "the plugin answers every step as the model does",
                format!(
                    "{reason}\nminimal failing sequence ({} steps):\n{}",
                    steps.len(),
                    listing.join("\n")
                ),
            ))
        }
        Err(TestError::Abort(reason)) => {
            Err(ctx.fail("the property run completes", format!("aborted: {reason}")))
        }
    }
}

/// What a stopped step says, for proptest's failure message.
fn stopped(stop: Stop) -> String {
    match stop {
        Stop::Failed(failure) => failure.actual,
        Stop::Skipped(reason) => reason,
    }
}
