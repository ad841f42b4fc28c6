//! The fault plan fails the calls it names, delays the operations it names, and a failed
//! call never reaches the wrapped plugin ("typed error, nothing lost").

use std::{
    sync::{Arc, mpsc},
    thread,
    time::{Duration, Instant},
};

use identity_cache_mocks::{Fault, FaultPlan, FaultyPersistence, InMemoryStore, Operation};
use identity_cache_persistence::{CachePersistence, ErrorKind, Result};

fn faulty() -> FaultyPersistence<identity_cache_mocks::InMemoryPersistence> {
    FaultyPersistence::new(InMemoryStore::new().slot("c"))
}

/// Calls `operation` once and returns the error kind, if it failed.
fn call(p: &dyn CachePersistence, operation: Operation) -> Option<ErrorKind> {
    let result = match operation {
        Operation::Load => p.load().map(drop),
        Operation::Save => p.save(b"x"),
        Operation::Delete => p.delete().map(drop),
        Operation::Version => p.version().map(drop),
        Operation::Lock => p.lock(Duration::from_secs(1)).map(drop),
        other => panic!("new operation {other}"),
    };
    result.err().map(|err| err.kind())
}

#[test]
fn the_nth_call_fails_once_and_the_others_go_through() {
    for operation in Operation::ALL {
        let p = faulty();
        p.plan().fail_nth(operation, 3, ErrorKind::AccessDenied);
        let kinds: Vec<_> = (0..5).map(|_| call(&p, operation)).collect();
        assert_eq!(
            kinds,
            [None, None, Some(ErrorKind::AccessDenied), None, None],
            "{operation}"
        );
        assert_eq!(p.plan().calls(operation), 5);
        assert_eq!(p.plan().fired(operation), 1);
        assert_eq!(p.plan().armed(), 0, "a one-shot fault is gone once fired");
    }
}

#[test]
fn faults_count_calls_from_when_they_are_added() {
    let p = faulty();
    for _ in 0..3 {
        assert_eq!(call(&p, Operation::Load), None);
    }
    p.plan()
        .fail_next(Operation::Load, ErrorKind::StorageUnavailable);
    assert_eq!(
        call(&p, Operation::Load),
        Some(ErrorKind::StorageUnavailable)
    );
    assert_eq!(call(&p, Operation::Load), None);
}

#[test]
fn a_fault_only_hits_its_own_operation() {
    let p = faulty();
    p.plan().fail_next(Operation::Delete, ErrorKind::Io);
    for operation in [
        Operation::Save,
        Operation::Load,
        Operation::Version,
        Operation::Lock,
    ] {
        assert_eq!(call(&p, operation), None, "{operation}");
    }
    assert_eq!(call(&p, Operation::Delete), Some(ErrorKind::Io));
}

#[test]
fn a_repeating_fault_fails_every_call_from_n_on() {
    let p = faulty();
    p.plan()
        .fail_from(Operation::Save, 2, ErrorKind::StorageFull);
    let kinds: Vec<_> = (0..5).map(|_| call(&p, Operation::Save)).collect();
    assert_eq!(
        kinds,
        [
            None,
            Some(ErrorKind::StorageFull),
            Some(ErrorKind::StorageFull),
            Some(ErrorKind::StorageFull),
            Some(ErrorKind::StorageFull),
        ]
    );
    assert_eq!(p.plan().armed(), 1, "a repeating fault stays armed");
    p.plan().clear();
    assert_eq!(call(&p, Operation::Save), None, "clear disarms it");
}

#[test]
fn a_failed_save_writes_nothing() -> Result<()> {
    let p = faulty();
    p.save(b"old")?;
    let token = p.inner().version()?;
    p.plan().fail_next(Operation::Save, ErrorKind::StorageFull);

    let err = p.save(b"new").expect_err("scripted to fail");
    assert_eq!(err.kind(), ErrorKind::StorageFull);
    assert_eq!(
        p.inner().load()?.as_deref(),
        Some(&b"old"[..]),
        "old blob kept"
    );
    assert_eq!(
        p.inner().version()?,
        token,
        "the inner plugin was not called"
    );
    Ok(())
}

#[test]
fn a_failed_delete_removes_nothing_and_a_failed_lock_holds_nothing() -> Result<()> {
    let p = faulty();
    p.save(b"kept")?;
    p.plan()
        .fail_next(Operation::Delete, ErrorKind::AccessDenied)
        .fail_next(Operation::Lock, ErrorKind::LockTimeout);
    assert_eq!(
        p.delete().map_err(|e| e.kind()),
        Err(ErrorKind::AccessDenied)
    );
    assert_eq!(p.load()?.as_deref(), Some(&b"kept"[..]));
    assert_eq!(
        p.lock(Duration::from_secs(1))
            .map(drop)
            .map_err(|e| e.kind()),
        Err(ErrorKind::LockTimeout)
    );
    let _guard = p.inner().lock(Duration::ZERO)?;
    Ok(())
}

#[test]
fn errors_carry_the_scripted_kind_and_message() {
    let p = faulty();
    p.plan()
        .add(Fault::new(Operation::Load, ErrorKind::CorruptData).message("bad ciphertext"));
    let err = p.load().expect_err("scripted");
    assert_eq!(err.kind(), ErrorKind::CorruptData);
    assert_eq!(err.to_string(), "bad ciphertext");

    p.plan().fail_next(Operation::Load, ErrorKind::Io);
    let err = p.load().expect_err("scripted");
    assert_eq!(err.to_string(), "injected fault: load call 2 fails with io");
}

#[test]
fn the_first_fault_added_wins_a_call_and_the_loser_is_dropped() {
    let p = faulty();
    p.plan()
        .fail_next(Operation::Save, ErrorKind::StorageFull)
        .fail_next(Operation::Save, ErrorKind::AccessDenied);
    assert_eq!(call(&p, Operation::Save), Some(ErrorKind::StorageFull));
    assert_eq!(
        call(&p, Operation::Save),
        None,
        "the loser does not fire late"
    );
    assert_eq!(p.plan().armed(), 0);
}

#[test]
fn latency_delays_only_its_operation() {
    let p = faulty();
    let latency = Duration::from_millis(300);
    p.plan().set_latency(Operation::Load, latency);

    let start = Instant::now();
    assert_eq!(call(&p, Operation::Load), None);
    assert!(
        start.elapsed() >= latency,
        "load took {:?}",
        start.elapsed()
    );

    let start = Instant::now();
    assert_eq!(call(&p, Operation::Save), None);
    assert!(start.elapsed() < latency, "save took {:?}", start.elapsed());

    p.plan().set_latency(Operation::Load, Duration::ZERO);
    let start = Instant::now();
    assert_eq!(call(&p, Operation::Load), None);
    assert!(start.elapsed() < latency, "latency removed");
}

#[test]
fn latency_also_delays_a_failing_call() {
    let p = faulty();
    let latency = Duration::from_millis(80);
    p.plan()
        .set_latency(Operation::Lock, latency)
        .fail_next(Operation::Lock, ErrorKind::LockTimeout);
    let start = Instant::now();
    assert_eq!(call(&p, Operation::Lock), Some(ErrorKind::LockTimeout));
    assert!(start.elapsed() >= latency);
}

#[test]
fn faults_can_be_added_while_another_thread_uses_the_plugin() -> Result<()> {
    let plan = FaultPlan::new();
    let p = Arc::new(FaultyPersistence::with_plan(
        InMemoryStore::new().slot("c"),
        plan.clone(),
    ));
    let (go, wait_go) = mpsc::channel::<()>();
    let (answer, answers) = mpsc::channel();
    let user = {
        let p = Arc::clone(&p);
        thread::spawn(move || {
            while wait_go.recv().is_ok() {
                let _ = answer.send(p.save(b"blob").map_err(|e| e.kind()));
            }
        })
    };
    let long = Duration::from_secs(10);
    go.send(()).expect("user alive");
    assert_eq!(answers.recv_timeout(long).expect("answer"), Ok(()));
    plan.fail_next(Operation::Save, ErrorKind::StorageFull);
    go.send(()).expect("user alive");
    assert_eq!(
        answers.recv_timeout(long).expect("answer"),
        Err(ErrorKind::StorageFull)
    );
    go.send(()).expect("user alive");
    assert_eq!(answers.recv_timeout(long).expect("answer"), Ok(()));
    drop(go);
    user.join().expect("no panic");
    assert_eq!(plan.calls(Operation::Save), 3);
    Ok(())
}

#[test]
fn describe_is_the_inner_description_and_never_fails() {
    let p = faulty();
    for operation in Operation::ALL {
        p.plan()
            .fail_from(operation, 1, ErrorKind::StorageUnavailable);
    }
    assert_eq!(p.describe(), p.inner().describe());
}

#[test]
fn debug_of_the_wrapper_shows_no_blob() -> Result<()> {
    let p = faulty();
    p.save(b"SECRET")?;
    p.plan().fail_next(Operation::Save, ErrorKind::Io);
    let shown = format!("{p:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("FaultPlan"), "{shown}");
    Ok(())
}
