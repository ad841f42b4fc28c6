//! The gate lets the test pick the order in which concurrent calls reach the plugin, and
//! never leaves a caller hanging once the test lets go.

use std::{
    sync::Arc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use identity_cache_mocks::{GatedPersistence, InMemoryPersistence, InMemoryStore, Operation};
use identity_cache_persistence::{CachePersistence, ErrorKind, Result};

const LONG: Duration = Duration::from_secs(10);
const SHORT: Duration = Duration::from_millis(100);

type Gated = Arc<GatedPersistence<InMemoryPersistence>>;

fn gated() -> (Gated, identity_cache_mocks::GateHandle) {
    let (gated, gate) = GatedPersistence::new(InMemoryStore::new().slot("c"));
    (Arc::new(gated), gate)
}

/// Runs `f` on a thread named `name`.
fn spawn<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .expect("spawn a thread")
}

/// Joins `thread`, failing the test instead of hanging if it does not end within `LONG`.
fn join<T>(thread: JoinHandle<T>) -> T {
    let deadline = Instant::now() + LONG;
    while !thread.is_finished() {
        assert!(Instant::now() < deadline, "a caller is stuck at the gate");
        thread::sleep(Duration::from_millis(5));
    }
    thread.join().expect("the caller does not panic")
}

/// Increments the counter stored in `p` without the lock (the bug the gate exposes).
fn increment(p: &dyn CachePersistence) -> Result<()> {
    let n: u32 = p.load()?.map_or(0, |blob| {
        String::from_utf8_lossy(&blob).parse().expect("a number")
    });
    p.save((n + 1).to_string().as_bytes())
}

/// Increments the counter under the lock, as the contract asks.
fn increment_locked(p: &dyn CachePersistence) -> Result<()> {
    let _guard = p.lock(LONG)?;
    increment(p)
}

#[test]
fn the_gate_reproduces_a_lost_update_deterministically() -> Result<()> {
    let (p, gate) = gated();
    let a = spawn("a", {
        let p = Arc::clone(&p);
        move || increment(&*p)
    });
    let a_load = gate.expect_call(Operation::Load, LONG);
    let b = spawn("b", {
        let p = Arc::clone(&p);
        move || increment(&*p)
    });
    let b_load = gate.expect_call(Operation::Load, LONG);
    assert_eq!(a_load.thread_name(), Some("a"));
    assert_eq!(b_load.thread_name(), Some("b"));

    // Both read 0 before either writes: the interleaving a scheduler rarely produces.
    // Each save is taken before the next load is released, so the order is fixed.
    assert!(a_load.release().wait(LONG));
    let a_save = gate.expect_call(Operation::Save, LONG);
    assert!(b_load.release().wait(LONG));
    let b_save = gate.expect_call(Operation::Save, LONG);
    assert_eq!(a_save.thread_name(), Some("a"));
    assert_eq!(b_save.thread_name(), Some("b"));
    assert_eq!(a_save.data(), Some(&b"1"[..]));
    assert_eq!(b_save.data(), Some(&b"1"[..]), "b lost a's update");
    a_save.release();
    b_save.release();
    join(a)?;
    join(b)?;
    assert_eq!(p.inner().load()?.as_deref(), Some(&b"1"[..]));
    Ok(())
}

#[test]
fn under_the_lock_the_second_caller_waits_for_the_first() -> Result<()> {
    let (p, gate) = gated();
    let a = spawn("a", {
        let p = Arc::clone(&p);
        move || increment_locked(&*p)
    });
    let a_lock = gate.expect_call(Operation::Lock, LONG);
    assert_eq!(a_lock.lock_wait(), Some(LONG));
    assert!(a_lock.release().wait(LONG), "a holds the lock");
    let a_load = gate.expect_call(Operation::Load, LONG);

    // b starts only now, so the next call at the gate is b's.
    let b = spawn("b", {
        let p = Arc::clone(&p);
        move || increment_locked(&*p)
    });
    let b_lock = gate.expect_call(Operation::Lock, LONG);
    assert_eq!(b_lock.thread_name(), Some("b"));
    let b_locked = b_lock.release();
    assert!(
        !b_locked.wait(SHORT),
        "b must wait for a's guard inside the plugin"
    );

    assert!(a_load.release().wait(LONG));
    gate.expect_call(Operation::Save, LONG).release();
    join(a)?;
    assert!(b_locked.wait(LONG), "a's guard dropped, b got the lock");
    let b_load = gate.expect_call(Operation::Load, LONG);
    assert!(b_load.release().wait(LONG));
    let b_save = gate.expect_call(Operation::Save, LONG);
    assert_eq!(b_save.data(), Some(&b"2"[..]), "b saw a's write");
    b_save.release();
    join(b)?;
    Ok(())
}

#[test]
fn a_call_failed_at_the_gate_returns_the_kind_and_never_reaches_the_plugin() -> Result<()> {
    let (p, gate) = gated();
    p.inner().save(b"old")?;
    let saver = spawn("saver", {
        let p = Arc::clone(&p);
        move || p.save(b"new")
    });
    assert!(
        gate.expect_call(Operation::Save, LONG)
            .fail(ErrorKind::StorageFull)
            .wait(LONG)
    );
    let err = join(saver).expect_err("failed at the gate");
    assert_eq!(err.kind(), ErrorKind::StorageFull);
    assert_eq!(p.inner().load()?.as_deref(), Some(&b"old"[..]));
    Ok(())
}

#[test]
fn completion_waits_for_the_inner_call_to_return() -> Result<()> {
    // The inner plugin is gated too, so "still running" is a fact, not a timing guess.
    let (inner, inner_gate) = GatedPersistence::new(InMemoryPersistence::new());
    let (p, gate) = GatedPersistence::new(inner);
    let p = Arc::new(p);
    let deleter = spawn("deleter", {
        let p = Arc::clone(&p);
        move || p.delete()
    });
    let done = gate.expect_call(Operation::Delete, LONG).release();
    let inner_call = inner_gate.expect_call(Operation::Delete, LONG);
    assert!(
        !done.is_done(),
        "the inner delete is held at the inner gate"
    );
    assert!(!done.wait(SHORT));
    inner_call.release();
    assert!(done.wait(LONG));
    assert!(!join(deleter)?, "nothing was stored");
    Ok(())
}

#[test]
fn dropping_the_handle_releases_every_waiting_call() -> Result<()> {
    let (p, gate) = gated();
    let mut callers: Vec<_> = (0..3)
        .map(|i| {
            let p = Arc::clone(&p);
            spawn(&format!("caller-{i}"), move || p.save(b"x"))
        })
        .collect();
    // One call taken and held by the test; the others queued (or still on their way).
    let held = gate.next_call(LONG).expect("a call arrives");
    let held_name = held.thread_name().expect("named").to_owned();
    let held_index = callers
        .iter()
        .position(|c| c.thread().name() == Some(held_name.as_str()))
        .expect("one of ours");
    let held_caller = callers.remove(held_index);

    drop(gate);
    for caller in callers {
        join(caller)?;
    }
    thread::sleep(SHORT);
    assert!(
        !held_caller.is_finished(),
        "a taken call waits for its PendingCall"
    );
    drop(held);
    join(held_caller)?;

    // Calls after the drop go straight through (`join` fails the test if one waits).
    let deleted = join(spawn("after", move || p.delete()))?;
    assert!(deleted);
    Ok(())
}

#[test]
fn dropping_the_handle_releases_queued_and_held_calls() -> Result<()> {
    let (p, gate) = gated();
    let first = spawn("first", {
        let p = Arc::clone(&p);
        move || p.save(b"first")
    });
    let held = gate.expect_call(Operation::Save, LONG);
    let second = spawn("second", {
        let p = Arc::clone(&p);
        move || p.load()
    });
    // Give the second call time to queue behind the first without being taken.
    thread::sleep(SHORT);
    drop(gate);
    join(second)?;
    drop(held);
    join(first)?;
    let loaded = join(spawn("after", move || p.load()))?;
    assert_eq!(
        loaded.as_deref(),
        Some(&b"first"[..]),
        "open gate, no waiting"
    );
    Ok(())
}

#[test]
fn dropping_a_pending_call_releases_it() -> Result<()> {
    let (p, gate) = gated();
    let saver = spawn("saver", {
        let p = Arc::clone(&p);
        move || p.save(b"x")
    });
    drop(gate.expect_call(Operation::Save, LONG));
    join(saver)?;
    assert_eq!(p.inner().load()?.as_deref(), Some(&b"x"[..]));
    Ok(())
}

#[test]
fn describe_does_not_wait_and_no_call_means_none() {
    let (p, gate) = gated();
    assert_eq!(p.describe().backend, "memory");
    assert!(gate.next_call(SHORT).is_none());
    gate.expect_no_call(Duration::from_millis(10));
}

#[test]
#[should_panic(expected = "expected a save call at the gate")]
fn expect_call_panics_on_another_operation() {
    let (p, gate) = gated();
    let _loader = spawn("loader", move || p.load());
    let _ = gate.expect_call(Operation::Save, LONG);
}

#[test]
fn debug_of_a_pending_save_shows_the_length_only() {
    let (p, gate) = gated();
    let saver = spawn("saver", {
        let p = Arc::clone(&p);
        move || p.save(b"SECRET")
    });
    let call = gate.expect_call(Operation::Save, LONG);
    let shown = format!("{call:?} {gate:?} {p:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("data_len: Some(6)"), "{shown}");
    call.release();
    assert!(join(saver).is_ok());
}
