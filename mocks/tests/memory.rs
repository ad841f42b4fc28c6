//! The in-memory plugin keeps the contract of `CachePersistence` that one process can keep.

use std::{
    collections::HashSet,
    sync::{Arc, Barrier, mpsc},
    thread,
    time::{Duration, Instant},
};

use identity_cache_mocks::{InMemoryPersistence, InMemoryStore};
use identity_cache_persistence::{CachePersistence, ErrorKind, Result};

const LONG: Duration = Duration::from_secs(10);

#[test]
fn a_slot_never_saved_loads_as_none() -> Result<()> {
    let cache = InMemoryStore::new().slot("msal.cache");
    assert_eq!(cache.load()?, None);
    assert_eq!(cache.version()?, None);
    Ok(())
}

#[test]
fn an_empty_blob_is_not_absent() -> Result<()> {
    let cache = InMemoryPersistence::new();
    cache.save(b"")?;
    assert_eq!(cache.load()?, Some(Vec::new()));
    assert!(cache.version()?.is_some(), "an empty blob is stored");
    assert!(cache.delete()?, "deleting an empty blob removes something");
    assert_eq!(cache.load()?, None);
    Ok(())
}

#[test]
fn binary_blobs_round_trip_byte_for_byte() -> Result<()> {
    let cache = InMemoryPersistence::new();
    let every_byte: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    cache.save(&every_byte)?;
    assert_eq!(cache.load()?, Some(every_byte));

    let mut rng = fastrand::Rng::with_seed(7);
    let big: Vec<u8> = (0..(1 << 20) + 13).map(|_| rng.u8(..)).collect();
    cache.save(&big)?;
    assert_eq!(cache.load()?.as_deref(), Some(&big[..]));
    Ok(())
}

#[test]
fn delete_says_whether_something_was_removed() -> Result<()> {
    let cache = InMemoryPersistence::new();
    assert!(!cache.delete()?, "nothing stored yet");
    cache.save(b"blob")?;
    assert!(cache.delete()?);
    assert_eq!(cache.load()?, None);
    assert!(!cache.delete()?, "already deleted");
    Ok(())
}

#[test]
fn version_moves_on_every_save_also_of_the_same_size() -> Result<()> {
    let cache = InMemoryPersistence::new();
    let mut seen = HashSet::new();
    for round in 0..50u8 {
        // Same length every time, sometimes the very same bytes.
        cache.save(&[round % 2; 16])?;
        let token = cache.version()?.expect("a blob is stored");
        assert!(
            seen.insert(token.clone()),
            "token {token} reused after save {round}"
        );
    }
    Ok(())
}

#[test]
fn version_is_stable_without_a_change() -> Result<()> {
    let cache = InMemoryPersistence::new();
    cache.save(b"blob")?;
    let token = cache.version()?;
    cache.load()?;
    let _guard = cache.lock(LONG)?;
    assert_eq!(
        cache.version()?,
        token,
        "loads and locks do not move the token"
    );
    Ok(())
}

#[test]
fn version_never_reuses_a_token_across_delete_and_resave() -> Result<()> {
    let cache = InMemoryPersistence::new();
    cache.save(b"blob")?;
    let first = cache.version()?;
    assert!(cache.delete()?);
    assert_eq!(cache.version()?, None);
    cache.save(b"blob")?;
    assert_ne!(cache.version()?, first);
    Ok(())
}

#[test]
fn deleting_nothing_changes_nothing() -> Result<()> {
    let store = InMemoryStore::new();
    let cache = store.slot("a");
    cache.save(b"x")?;
    assert!(cache.delete()?);
    let before = format!("{cache:?}");
    assert!(!cache.delete()?);
    assert_eq!(format!("{cache:?}"), before, "generation must not move");
    Ok(())
}

#[test]
fn handles_of_one_slot_see_each_others_writes() -> Result<()> {
    let store = InMemoryStore::new();
    let a = store.slot("msal.cache");
    let b = store.clone().slot("msal.cache");
    let c = a.clone();
    a.save(b"from a")?;
    assert_eq!(b.load()?.as_deref(), Some(&b"from a"[..]));
    let token = c.version()?;
    b.save(b"from b")?;
    assert_ne!(
        a.version()?,
        token,
        "a save by another handle moves the token"
    );
    assert_eq!(c.load()?.as_deref(), Some(&b"from b"[..]));
    assert!(c.delete()?);
    assert_eq!(a.load()?, None);
    Ok(())
}

#[test]
fn different_names_and_different_stores_are_isolated() -> Result<()> {
    let store = InMemoryStore::new();
    let one = store.slot("one");
    let two = store.slot("two");
    let elsewhere = InMemoryStore::new().slot("one");
    one.save(b"1")?;
    assert_eq!(two.load()?, None);
    assert_eq!(elsewhere.load()?, None);
    two.save(b"2")?;
    assert!(elsewhere.delete().is_ok_and(|deleted| !deleted));
    assert_eq!(one.load()?.as_deref(), Some(&b"1"[..]));
    assert_eq!(store.names(), ["one", "two"]);

    let _one_locked = one.lock(LONG)?;
    let _two_locked = two.lock(Duration::from_millis(10))?;
    let _elsewhere_locked = elsewhere.lock(Duration::from_millis(10))?;
    Ok(())
}

#[test]
fn shared_handles_of_one_name_share_the_process_wide_slot() -> Result<()> {
    let name = format!("shared-{}", fastrand::u64(..));
    InMemoryPersistence::shared(&name).save(b"global")?;
    assert_eq!(
        InMemoryStore::global().slot(&name).load()?.as_deref(),
        Some(&b"global"[..])
    );
    assert_eq!(InMemoryPersistence::shared("another-name").load()?, None);
    let _guard = InMemoryPersistence::shared(&name).lock(LONG)?;
    let other = InMemoryPersistence::shared(&name).lock(Duration::ZERO);
    assert_eq!(
        other.map(drop).map_err(|e| e.kind()),
        Err(ErrorKind::LockTimeout)
    );
    Ok(())
}

#[test]
fn lock_excludes_another_thread_and_times_out_with_lock_timeout() -> Result<()> {
    let store = InMemoryStore::new();
    let guard = store.slot("c").lock(LONG)?;
    let other = store.slot("c");
    let waited = thread::spawn(move || {
        let start = Instant::now();
        let result = other.lock(Duration::from_millis(150)).map(drop);
        (result, start.elapsed())
    })
    .join()
    .expect("the waiting thread does not panic");
    let err = waited.0.expect_err("the lock is held");
    assert_eq!(err.kind(), ErrorKind::LockTimeout);
    assert!(
        waited.1 >= Duration::from_millis(150),
        "waited only {:?}",
        waited.1
    );
    assert!(waited.1 < LONG, "waited {:?}", waited.1);
    drop(guard);
    Ok(())
}

#[test]
fn lock_is_not_reentrant() -> Result<()> {
    let cache = InMemoryPersistence::new();
    let _guard = cache.lock(LONG)?;
    let again = cache.lock(Duration::from_millis(20));
    assert_eq!(
        again.map(drop).map_err(|e| e.kind()),
        Err(ErrorKind::LockTimeout)
    );
    Ok(())
}

#[test]
fn a_waiter_gets_the_lock_soon_after_the_guard_drops() -> Result<()> {
    let store = InMemoryStore::new();
    let guard = store.slot("c").lock(LONG)?;
    let other = store.slot("c");
    let (acquired, got) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let result = other.lock(LONG).map(drop);
        let _ = acquired.send(Instant::now());
        result
    });
    thread::sleep(Duration::from_millis(100));
    assert!(
        got.try_recv().is_err(),
        "the waiter must not get a held lock"
    );
    let released = Instant::now();
    drop(guard);
    let at = got.recv_timeout(LONG).expect("the waiter gets the lock");
    assert!(
        at.duration_since(released) < Duration::from_secs(1),
        "woken late: {:?}",
        at.duration_since(released)
    );
    waiter.join().expect("no panic")?;
    Ok(())
}

#[test]
fn explicit_release_frees_the_lock() -> Result<()> {
    let cache = InMemoryPersistence::new();
    cache.lock(LONG)?.release()?;
    let _again = cache.lock(Duration::ZERO)?;
    Ok(())
}

#[test]
fn the_lock_makes_read_modify_write_lose_no_update() -> Result<()> {
    const THREADS: usize = 4;
    const ROUNDS: usize = 200;
    let store = InMemoryStore::new();
    store.slot("counter").save(b"0")?;
    let start = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let cache = store.slot("counter");
            let start = Arc::clone(&start);
            thread::spawn(move || -> Result<()> {
                start.wait();
                for _ in 0..ROUNDS {
                    let _guard = cache.lock(LONG)?;
                    let blob = cache.load()?.expect("the counter exists");
                    let n: usize = String::from_utf8_lossy(&blob).parse().expect("a number");
                    thread::yield_now();
                    cache.save((n + 1).to_string().as_bytes())?;
                }
                Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("no panic")?;
    }
    let total = store.slot("counter").load()?.expect("stored");
    assert_eq!(total, (THREADS * ROUNDS).to_string().into_bytes());
    Ok(())
}

#[test]
fn concurrent_loads_see_whole_blobs_only() -> Result<()> {
    let store = InMemoryStore::new();
    let short = vec![b's'; 10];
    let long = vec![b'l'; 100_000];
    store.slot("c").save(&short)?;
    let writer = {
        let cache = store.slot("c");
        let (short, long) = (short.clone(), long.clone());
        thread::spawn(move || -> Result<()> {
            for i in 0..200 {
                cache.save(if i % 2 == 0 { &long } else { &short })?;
            }
            Ok(())
        })
    };
    let reader = store.slot("c");
    while !writer.is_finished() {
        let blob = reader.load()?.expect("never absent");
        assert!(
            blob == short || blob == long,
            "torn read of {} bytes",
            blob.len()
        );
    }
    writer.join().expect("no panic")?;
    Ok(())
}

#[test]
fn max_size_refuses_larger_blobs_with_too_large_and_keeps_the_old_one() -> Result<()> {
    let cache = InMemoryPersistence::new().with_max_size(8);
    assert_eq!(cache.describe().capabilities.max_size, Some(8));
    cache.save(b"12345678")?;
    let token = cache.version()?;
    let err = cache.save(b"123456789").expect_err("one byte too many");
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(
        !err.to_string().contains("123456789"),
        "no blob in messages: {err}"
    );
    assert_eq!(cache.load()?.as_deref(), Some(&b"12345678"[..]));
    assert_eq!(cache.version()?, token, "nothing changed");
    Ok(())
}

#[test]
fn open_refuses_the_names_the_reference_plugin_refuses() {
    let store = InMemoryStore::new();
    for bad in ["", "..", "a/b", "a\\b", "nul\0", "x.lockfile"] {
        let err = store.open(bad).expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::InvalidName, "{bad:?}");
    }
    assert_eq!(
        store
            .open("msal.cache")
            .map(|c| c.name().to_owned())
            .ok()
            .as_deref(),
        Some("msal.cache")
    );
}

#[test]
fn a_storage_fault_fails_every_handle_and_loses_nothing() -> Result<()> {
    let store = InMemoryStore::new();
    let a = store.slot("c");
    let b = store.slot("c");
    a.save(b"old")?;
    let token = a.version()?;
    store.inject_fault("c", ErrorKind::AccessDenied);
    let kinds = [
        b.load().map(drop),
        b.save(b"new"),
        b.delete().map(drop),
        b.version().map(drop),
    ]
    .map(|result| result.map_err(|e| e.kind()));
    assert_eq!(kinds, [Err(ErrorKind::AccessDenied); 4]);
    assert_eq!(store.slot("other").load()?, None, "other slots unaffected");
    let _guard = a.lock(LONG)?;
    store.clear_fault("c");
    assert_eq!(a.load()?.as_deref(), Some(&b"old"[..]));
    assert_eq!(a.version()?, token, "nothing changed while refused");
    Ok(())
}

#[test]
fn corrupt_data_fails_loads_stays_in_place_and_is_replaced_by_a_save() -> Result<()> {
    let store = InMemoryStore::new();
    let cache = store.slot("c");
    store.corrupt("c");
    let token = cache.version()?;
    assert!(token.is_some(), "damaged data is still stored data");
    for _ in 0..2 {
        assert_eq!(
            cache.load().map_err(|e| e.kind()),
            Err(ErrorKind::CorruptData)
        );
    }
    assert_eq!(cache.version()?, token, "a failed load changes nothing");
    cache.save(b"fresh")?;
    assert_eq!(cache.load()?.as_deref(), Some(&b"fresh"[..]));

    store.corrupt("c");
    assert!(cache.delete()?, "damaged data can be deleted");
    assert_eq!(cache.load()?, None);
    Ok(())
}

#[test]
fn describes_itself_as_a_process_local_unencrypted_plugin() {
    let cache = InMemoryStore::new().slot("msal.cache");
    let description = cache.describe();
    assert_eq!(description.backend, "memory");
    assert_eq!(description.location, "memory:msal.cache");
    let caps = description.capabilities;
    assert!(
        caps.exclusive_lock,
        "its lock excludes every holder that can reach the slot"
    );
    assert!(!caps.shared_across_processes);
    assert!(caps.change_detection);
    assert!(!caps.encrypts_at_rest);
    assert_eq!(caps.max_size, None);
}

#[test]
fn debug_shows_lengths_not_bytes() -> Result<()> {
    let store = InMemoryStore::new();
    let cache = store.slot("c");
    cache.save(b"SECRET-refresh-token")?;
    let guard = cache.lock(LONG)?;
    for shown in [
        format!("{cache:?}"),
        format!("{cache:#?}"),
        format!("{store:?}"),
        format!("{guard:?}"),
    ] {
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(
            !shown.contains("83, 69, 67"),
            "bytes of the secret in {shown}"
        );
    }
    assert!(format!("{cache:?}").contains("stored_len: Some(20)"));
    Ok(())
}

#[test]
fn works_as_a_trait_object() -> Result<()> {
    let cache: Arc<dyn CachePersistence> = Arc::new(InMemoryPersistence::new());
    let boxed: Box<dyn CachePersistence> = Box::new(Arc::clone(&cache));
    boxed.save(b"via box")?;
    assert_eq!(cache.load()?.as_deref(), Some(&b"via box"[..]));
    Ok(())
}
