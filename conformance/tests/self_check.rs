//! The suite checks itself: a small correct in-memory plugin passes every case that applies
//! to it, and plugins broken in one way each fail the case named for that rule (and the
//! failure says which rule, what was expected, and how to rerun it).
//!
//! The full catalogue of broken plugins lives in the mocks crate; these few guard the
//! suite's own trickiest checks (timing, tokens, Debug, the model's shrinking).

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Condvar, Mutex, atomic::AtomicU64, atomic::Ordering},
    time::{Duration, Instant},
};

use conformance::{Config, Namespace, Outcome, PluginFactory, Suite, all_cases, select};
use identity_cache_persistence::{
    CachePersistence, Capabilities, ChangeToken, Description, Error, ErrorKind, HeldLock,
    LockGuard, Result, validate_name,
};

/// One way to break the in-memory plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    None,
    /// lock() always succeeds at once.
    NoOpLock,
    /// lock() on a held lock fails with LockTimeout at once instead of waiting.
    TimeoutAtOnce,
    /// The change token is the blob's length.
    TokenIsLength,
    /// Debug prints the stored blob.
    DebugLeaks,
    /// Each handle caches the first blob it loaded.
    StaleLoad,
    /// Blobs over 100 KiB lose their last byte.
    DropsTail,
    /// delete() always answers true.
    DeleteAlwaysTrue,
}

#[derive(Default)]
struct Slot {
    data: Option<Vec<u8>>,
    token: u64,
    locked: bool,
}

type Store = Arc<(Mutex<HashMap<String, Slot>>, Condvar)>;

static TOKENS: AtomicU64 = AtomicU64::new(1);

struct Memory {
    name: String,
    store: Store,
    broken: Break,
    cache: Mutex<Option<Vec<u8>>>,
}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Memory");
        d.field("name", &self.name);
        if self.broken == Break::DebugLeaks {
            let map = self.store.0.lock().expect("store");
            let data = map
                .get(&self.name)
                .and_then(|s| s.data.clone())
                .unwrap_or_default();
            d.field("data", &String::from_utf8_lossy(&data));
        }
        d.finish()
    }
}

struct Held {
    name: String,
    store: Store,
}

impl HeldLock for Held {
    fn release(self: Box<Self>) -> Result<()> {
        let (map, cv) = &*self.store;
        map.lock()
            .expect("store")
            .entry(self.name.clone())
            .or_default()
            .locked = false;
        cv.notify_all();
        Ok(())
    }
}

impl CachePersistence for Memory {
    fn describe(&self) -> Description {
        Description::new(
            "memory",
            self.name.clone(),
            Capabilities::full_plaintext().shared_across_processes(false),
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        if self.broken == Break::StaleLoad
            && let Some(cached) = self.cache.lock().expect("cache").clone()
        {
            return Ok(Some(cached));
        }
        let data = self
            .store
            .0
            .lock()
            .expect("store")
            .get(&self.name)
            .and_then(|s| s.data.clone());
        if self.broken == Break::StaleLoad {
            *self.cache.lock().expect("cache") = data.clone();
        }
        Ok(data)
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        let mut data = data.to_vec();
        if self.broken == Break::DropsTail && data.len() > 100 * 1024 {
            data.pop();
        }
        let mut map = self.store.0.lock().expect("store");
        let slot = map.entry(self.name.clone()).or_default();
        slot.token = if self.broken == Break::TokenIsLength {
            data.len() as u64
        } else {
            TOKENS.fetch_add(1, Ordering::SeqCst)
        };
        slot.data = Some(data);
        Ok(())
    }

    fn delete(&self) -> Result<bool> {
        let mut map = self.store.0.lock().expect("store");
        let had = map
            .get_mut(&self.name)
            .and_then(|s| s.data.take())
            .is_some();
        Ok(had || self.broken == Break::DeleteAlwaysTrue)
    }

    fn version(&self) -> Result<Option<ChangeToken>> {
        let map = self.store.0.lock().expect("store");
        Ok(map
            .get(&self.name)
            .filter(|s| s.data.is_some())
            .map(|s| ChangeToken::new(s.token.to_string())))
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        let held = Held {
            name: self.name.clone(),
            store: Arc::clone(&self.store),
        };
        if self.broken == Break::NoOpLock {
            return Ok(LockGuard::new(held));
        }
        let (map, cv) = &*self.store;
        let deadline = Instant::now() + wait;
        let mut guard = map.lock().expect("store");
        loop {
            let slot = guard.entry(self.name.clone()).or_default();
            if !slot.locked {
                slot.locked = true;
                return Ok(LockGuard::new(held));
            }
            let now = Instant::now();
            if now >= deadline || self.broken == Break::TimeoutAtOnce {
                return Err(Error::new(ErrorKind::LockTimeout, "lock timed out"));
            }
            guard = cv.wait_timeout(guard, deadline - now).expect("store").0;
        }
    }
}

struct MemoryFactory {
    store: Store,
    broken: Break,
}

impl MemoryFactory {
    fn new(broken: Break) -> Self {
        MemoryFactory {
            store: Arc::default(),
            broken,
        }
    }
}

impl PluginFactory for MemoryFactory {
    fn label(&self) -> String {
        format!("memory ({:?})", self.broken)
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        validate_name(&ns.name)?;
        Ok(Box::new(Memory {
            name: ns.name.clone(),
            store: Arc::clone(&self.store),
            broken: self.broken,
            cache: Mutex::new(None),
        }))
    }
}

fn config() -> Config {
    let mut config = Config::new();
    config.seed = 42;
    config.cases = 64;
    config
}

fn run(broken: Break, filter: &str) -> conformance::Report {
    let suite =
        Suite::new(Arc::new(MemoryFactory::new(broken)), config()).expect("scratch directory");
    let cases = select(&all_cases(), &[filter.to_string()]).expect("valid filter");
    assert!(!cases.is_empty(), "no case matches {filter}");
    suite.run(&cases)
}

#[test]
fn correct_memory_plugin_passes_everything_that_applies() {
    let suite =
        Suite::new(Arc::new(MemoryFactory::new(Break::None)), config()).expect("scratch directory");
    let report = suite.run(&all_cases());
    assert!(report.passed(), "{}", conformance::report::human(&report));
    // Multi-process cases do not apply to an in-process plugin, and say why.
    let skipped = report
        .case("lock::excludes_other_process")
        .expect("registered");
    assert!(
        matches!(&skipped.outcome, Outcome::Skipped(r) if r.contains("not shared across processes")),
        "{skipped:?}"
    );
}

/// Runs `filter` against a plugin broken by `broken` and asserts `case` fails.
fn assert_caught(broken: Break, filter: &str, case: &str) -> conformance::Failure {
    let report = run(broken, filter);
    let found = report
        .case(case)
        .unwrap_or_else(|| panic!("{case} not run"));
    match &found.outcome {
        Outcome::Failed(f) => {
            assert!(
                f.rerun.contains(case) && f.rerun.contains("42"),
                "rerun hint names case and seed: {}",
                f.rerun
            );
            f.clone()
        }
        other => panic!("{case} should fail for {broken:?}, got {other:?}"),
    }
}

#[test]
fn no_op_lock_is_caught() {
    assert_caught(
        Break::NoOpLock,
        "lock::excludes_other_handle",
        "lock::excludes_other_handle",
    );
    assert_caught(
        Break::NoOpLock,
        "lock::excludes_across_threads",
        "lock::excludes_across_threads",
    );
    assert_caught(
        Break::NoOpLock,
        "concurrency::no_lost_updates_threads",
        "concurrency::no_lost_updates_threads",
    );
}

#[test]
fn lock_that_does_not_wait_is_caught() {
    let failure = assert_caught(
        Break::TimeoutAtOnce,
        "lock::waits_before_timeout",
        "lock::waits_before_timeout",
    );
    assert!(failure.expected.contains("whole wait"), "{failure}");
    // And the bounded-timeout case does not blame it for the wrong rule.
    let report = run(Break::TimeoutAtOnce, "lock::timeout_is_bounded");
    assert_eq!(report.cases[0].outcome, Outcome::Passed);
}

#[test]
fn length_as_token_is_caught() {
    assert_caught(
        Break::TokenIsLength,
        "change::moves_on_same_size_saves",
        "change::moves_on_same_size_saves",
    );
}

#[test]
fn debug_leak_is_caught_without_repeating_the_secret() {
    let failure = assert_caught(
        Break::DebugLeaks,
        "security::blob_not_in_debug",
        "security::blob_not_in_debug",
    );
    assert!(
        !failure.to_string().contains("conformance-secret"),
        "{failure}"
    );
}

#[test]
fn stale_load_is_caught() {
    assert_caught(
        Break::StaleLoad,
        "contract::handles_share_slot",
        "contract::handles_share_slot",
    );
}

#[test]
fn dropped_tail_is_caught() {
    assert_caught(
        Break::DropsTail,
        "contract::round_trip_1mib",
        "contract::round_trip_1mib",
    );
}

#[test]
fn model_shrinks_to_a_minimal_sequence() {
    let failure = assert_caught(
        Break::DeleteAlwaysTrue,
        "model::",
        "model::sequences_match_model",
    );
    // Minimal: one delete of an absent blob (possibly preceded by nothing at all).
    assert!(
        failure
            .actual
            .contains("minimal failing sequence (1 steps)"),
        "{failure}"
    );
    assert!(failure.actual.contains("delete()"), "{failure}");
}
