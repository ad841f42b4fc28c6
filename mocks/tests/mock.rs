//! `MockCachePersistence` checks how code drives a plugin: the calls, their order, and
//! what the code does with each answer.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use identity_cache_mocks::{LockProbe, MockCachePersistence, probe_lock};
use identity_cache_persistence::{
    CachePersistence, Capabilities, ChangeToken, Description, Error, ErrorKind, LockGuard, Result,
};
use mockall::{Sequence, predicate::eq};

/// Code under test: a read-modify-write as the contract asks for it. It reloads only when
/// the change token moved since `seen`, and releases the lock after saving.
fn append_under_lock(
    p: &dyn CachePersistence,
    seen: &mut Option<ChangeToken>,
    cached: &mut Vec<u8>,
    suffix: &[u8],
) -> Result<()> {
    let guard = p.lock(Duration::from_secs(5))?;
    let now = p.version()?;
    if now != *seen {
        *cached = p.load()?.unwrap_or_default();
    }
    cached.extend_from_slice(suffix);
    p.save(cached)?;
    *seen = p.version()?;
    guard.release()
}

/// A `returning` closure for `expect_lock` that hands out `guard` once.
fn hand_out(guard: LockGuard) -> impl FnMut(Duration) -> Result<LockGuard> + Send {
    let guard = Mutex::new(Some(guard));
    move |_| {
        guard
            .lock()
            .map_err(|_| Error::new(ErrorKind::Other, "poisoned"))?
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Other, "lock called twice"))
    }
}

fn expect_lock(mock: &mut MockCachePersistence, seq: &mut Sequence) -> LockProbe {
    let (guard, probe) = probe_lock();
    mock.expect_lock()
        .times(1)
        .in_sequence(seq)
        .returning(hand_out(guard));
    probe
}

#[test]
fn reloads_when_the_token_moved_then_saves_under_the_lock() -> Result<()> {
    let mut mock = MockCachePersistence::new();
    let mut seq = Sequence::new();
    let probe = expect_lock(&mut mock, &mut seq);
    mock.expect_version()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|| Ok(Some(ChangeToken::new("7"))));
    mock.expect_load()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|| Ok(Some(b"ab".to_vec())));
    mock.expect_save()
        .with(eq(&b"abc"[..]))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    mock.expect_version()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|| Ok(Some(ChangeToken::new("8"))));

    let mut seen = Some(ChangeToken::new("6"));
    let mut cached = b"stale".to_vec();
    append_under_lock(&mock, &mut seen, &mut cached, b"c")?;
    assert_eq!(cached, b"abc");
    assert_eq!(seen, Some(ChangeToken::new("8")));
    assert_eq!(probe.releases(), 1, "released exactly once");
    Ok(())
}

#[test]
fn skips_the_load_when_the_token_did_not_move() -> Result<()> {
    let mut mock = MockCachePersistence::new();
    let mut seq = Sequence::new();
    let probe = expect_lock(&mut mock, &mut seq);
    mock.expect_version()
        .times(2)
        .returning(|| Ok(Some(ChangeToken::new("7"))));
    mock.expect_load().never();
    mock.expect_save().times(1).returning(|_| Ok(()));

    let mut seen = Some(ChangeToken::new("7"));
    let mut cached = b"ab".to_vec();
    append_under_lock(&mock, &mut seen, &mut cached, b"c")?;
    assert_eq!(cached, b"abc");
    assert!(!probe.is_held());
    Ok(())
}

#[test]
fn a_failed_save_is_reported_and_the_lock_still_released() {
    let mut mock = MockCachePersistence::new();
    let mut seq = Sequence::new();
    let probe = expect_lock(&mut mock, &mut seq);
    mock.expect_version().returning(|| Ok(None));
    mock.expect_load().never();
    mock.expect_save()
        .times(1)
        .returning(|_| Err(Error::new(ErrorKind::StorageFull, "disk full")));

    let mut seen = None;
    let mut cached = Vec::new();
    let err = append_under_lock(&mock, &mut seen, &mut cached, b"c").expect_err("save failed");
    assert_eq!(err.kind(), ErrorKind::StorageFull);
    assert_eq!(seen, None, "the token is not advanced past a failed save");
    assert_eq!(
        probe.releases(),
        1,
        "the guard was dropped on the error path"
    );
}

#[test]
fn a_lock_timeout_stops_before_any_other_call() {
    let mut mock = MockCachePersistence::new();
    mock.expect_lock()
        .with(eq(Duration::from_secs(5)))
        .times(1)
        .returning(|_| Err(Error::new(ErrorKind::LockTimeout, "held elsewhere")));
    mock.expect_version().never();
    mock.expect_load().never();
    mock.expect_save().never();

    let err = append_under_lock(&mock, &mut None, &mut Vec::new(), b"c").expect_err("timeout");
    assert_eq!(err.kind(), ErrorKind::LockTimeout);
}

#[test]
fn the_mock_is_a_send_sync_trait_object_with_debug_and_describe() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MockCachePersistence>();

    let mut mock = MockCachePersistence::new();
    mock.expect_describe()
        .returning(|| Description::new("mock", "nowhere", Capabilities::full().max_size(Some(1))));
    let plugin: Arc<dyn CachePersistence> = Arc::new(mock);
    assert_eq!(plugin.describe().capabilities.max_size, Some(1));
    assert!(format!("{plugin:?}").contains("MockCachePersistence"));
}

#[test]
fn delete_answers_are_scripted_in_order() -> Result<()> {
    let mut mock = MockCachePersistence::new();
    let mut seq = Sequence::new();
    mock.expect_delete()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|| Ok(true));
    mock.expect_delete()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|| Ok(false));
    assert!(mock.delete()?);
    assert!(!mock.delete()?);
    Ok(())
}
