//! `SecretStorePersistence`, the platform-independent part of the macOS Keychain backend,
//! over an in-memory `SecretStore`: round trips, the marker file and change token, the
//! lock file, in-place updates, typed errors that leave the stored blob alone, and the
//! validation probe.

use std::{
    fs,
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use identity_cache_persistence::{
    CachePersistence, ErrorKind,
    platform::{SecretStore, SecretStorePersistence, StoreError, StoreFailure, validate_store},
};

/// What the in-memory store holds and how it was used.
#[derive(Default)]
struct Item {
    secret: Option<Vec<u8>>,
    /// Fails the next call of any kind with this failure, once.
    fail_next: Option<StoreFailure>,
    /// Items created (set without an existing item) and removed.
    created: usize,
    deleted: usize,
    gets: usize,
}

/// A store of one item in memory; clones share the item, as two handles on one Keychain
/// item do. Its `Debug` never shows the secret.
#[derive(Clone, Default)]
struct MemoryStore {
    item: Arc<Mutex<Item>>,
    max_size: Option<usize>,
    /// Reads back something else than was stored (a broken store, for the probe).
    garbles: bool,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryStore")
    }
}

impl MemoryStore {
    fn item(&self) -> MutexGuard<'_, Item> {
        self.item.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail_next(&self, failure: StoreFailure) {
        self.item().fail_next = Some(failure);
    }

    fn check(&self) -> Result<MutexGuard<'_, Item>, StoreError> {
        let mut item = self.item();
        match item.fail_next.take() {
            Some(failure) => Err(StoreError::new(
                failure,
                std::io::Error::other("injected store failure"),
            )),
            None => Ok(item),
        }
    }
}

impl SecretStore for MemoryStore {
    fn backend(&self) -> &str {
        "memory-store"
    }
    fn location(&self) -> String {
        "in-memory test item".into()
    }
    fn max_size(&self) -> Option<usize> {
        self.max_size
    }
    fn get(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let mut item = self.check()?;
        item.gets += 1;
        let mut secret = item.secret.clone();
        if self.garbles
            && let Some(s) = secret.as_mut()
        {
            s.reverse();
        }
        Ok(secret)
    }
    fn set(&self, secret: &[u8]) -> Result<(), StoreError> {
        let mut item = self.check()?;
        if item.secret.is_none() {
            item.created += 1;
        }
        item.secret = Some(secret.to_vec());
        Ok(())
    }
    fn delete(&self) -> Result<bool, StoreError> {
        let mut item = self.check()?;
        let had = item.secret.take().is_some();
        if had {
            item.deleted += 1;
        }
        Ok(had)
    }
}

fn setup() -> (
    tempfile::TempDir,
    MemoryStore,
    SecretStorePersistence<MemoryStore>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MemoryStore::default();
    let p =
        SecretStorePersistence::new(dir.path().join("ids/msal.cache"), store.clone()).expect("new");
    (dir, store, p)
}

fn marker(dir: &Path) -> std::path::PathBuf {
    dir.join("ids/msal.cache")
}

#[test]
fn absent_empty_and_binary_blobs_round_trip_through_the_store() {
    let (_dir, store, p) = setup();
    assert_eq!(p.load().expect("load absent"), None);
    assert_eq!(p.version().expect("version absent"), None);

    p.save(b"").expect("save empty");
    assert_eq!(
        p.load().expect("load empty"),
        Some(vec![]),
        "empty is not absent"
    );

    let binary: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    p.save(&binary).expect("save binary");
    assert_eq!(p.load().expect("load binary"), Some(binary.clone()));
    assert_eq!(
        store.item().secret.as_deref(),
        Some(&binary[..]),
        "stored as it is"
    );
}

#[test]
fn the_marker_is_an_empty_private_file_at_the_cache_path() {
    let (dir, _store, p) = setup();
    let secret = b"{\"RefreshToken\":{\"k\":{\"secret\":\"s3cr3t\"}}}";
    p.save(secret).expect("save");
    let marker = marker(dir.path());
    assert_eq!(fs::read(&marker).expect("marker"), b"", "no blob on disk");
    assert_eq!(p.cache_path(), marker);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&marker), 0o600);
        assert_eq!(mode(&dir.path().join("ids")), 0o700);
    }
}

#[test]
fn the_change_token_is_the_markers_and_moves_on_every_save() {
    let (dir, store, p) = setup();
    let other = SecretStorePersistence::new(marker(dir.path()), store.clone()).expect("new");
    let mut seen = Vec::new();
    for round in 0..20 {
        p.save(b"same size blob").expect("save");
        let token = other.version().expect("version").expect("some token");
        assert!(
            !seen.contains(&token),
            "round {round}: token {token} seen before"
        );
        seen.push(token);
    }
    let gets = store.item().gets;
    assert_eq!(
        other.version().expect("version"),
        seen.last().cloned(),
        "stable"
    );
    assert_eq!(store.item().gets, gets, "a marked version reads no secret");
}

#[test]
fn saves_update_the_item_in_place() {
    let (_dir, store, p) = setup();
    for i in 0..5 {
        p.save(format!("blob {i}").as_bytes()).expect("save");
    }
    let item = store.item();
    assert_eq!(
        (item.created, item.deleted),
        (1, 0),
        "created once, never deleted and re-added"
    );
}

#[test]
fn delete_removes_the_secret_and_the_marker_but_not_the_lock_file() {
    let (dir, store, p) = setup();
    p.lock(Duration::from_secs(5))
        .expect("lock")
        .release()
        .expect("release");
    p.save(b"blob").expect("save");
    let lock_file = dir.path().join("ids/msal.cache.lockfile");
    // The released lock file is gone already; make one to see that delete leaves it.
    fs::write(&lock_file, b"").expect("lock file");
    assert!(p.delete().expect("delete"));
    assert_eq!(store.item().secret, None);
    assert!(!marker(dir.path()).exists(), "marker removed");
    assert!(lock_file.exists(), "lock file left");
    assert_eq!(p.version().expect("version"), None);
    assert_eq!(p.load().expect("load"), None);
    assert!(!p.delete().expect("delete again"));
}

#[test]
fn an_item_without_a_marker_still_has_a_token_that_follows_its_contents() {
    let (_dir, store, p) = setup();
    // Written by a program that keeps its marker elsewhere (.NET on macOS).
    store.item().secret = Some(b"written elsewhere".to_vec());
    let first = p.version().expect("version").expect("an item is stored");
    assert!(first.as_str().starts_with("unmarked:"), "{first}");
    assert_eq!(p.version().expect("version"), Some(first.clone()), "stable");
    store.item().secret = Some(b"written elsewhere, again".to_vec());
    let second = p.version().expect("version").expect("token");
    assert_ne!(first, second, "a change by the other program is seen");
    p.save(b"ours").expect("save");
    let third = p.version().expect("version").expect("token");
    assert!(!third.as_str().starts_with("unmarked:"));
}

#[test]
fn the_lock_is_the_msal_lock_file_beside_the_marker() {
    let (dir, store, p) = setup();
    let other = SecretStorePersistence::new(marker(dir.path()), store).expect("new");
    let guard = p.lock(Duration::from_secs(5)).expect("lock");
    assert!(dir.path().join("ids/msal.cache.lockfile").exists());
    let err = other.lock(Duration::ZERO).expect_err("held");
    assert_eq!(err.kind(), ErrorKind::LockTimeout);
    guard.release().expect("release");
    other
        .lock(Duration::ZERO)
        .expect("free again")
        .release()
        .expect("release");
}

#[test]
fn store_failures_map_to_kinds_and_leave_the_blob_alone() {
    let cases = [
        (StoreFailure::Locked, ErrorKind::AccessDenied),
        (StoreFailure::Denied, ErrorKind::AccessDenied),
        (StoreFailure::Unavailable, ErrorKind::StorageUnavailable),
        (StoreFailure::TooLarge, ErrorKind::TooLarge),
        (StoreFailure::Full, ErrorKind::StorageFull),
        (StoreFailure::Other, ErrorKind::Other),
    ];
    for (failure, kind) in cases {
        let (_dir, store, p) = setup();
        p.save(b"previous blob").expect("save");

        store.fail_next(failure);
        let err = p.save(b"new secret blob").expect_err("save fails");
        assert_eq!(err.kind(), kind, "{failure:?}");
        assert!(!err.to_string().contains("secret blob"), "{err}");
        assert!(err.to_string().contains("in-memory test item"), "{err}");
        let source = std::error::Error::source(&err).expect("source");
        assert!(source.downcast_ref::<StoreError>().is_some());
        assert_eq!(
            p.load().expect("load").as_deref(),
            Some(&b"previous blob"[..])
        );

        store.fail_next(failure);
        assert_eq!(p.load().expect_err("load fails").kind(), kind);
        store.fail_next(failure);
        assert_eq!(p.delete().expect_err("delete fails").kind(), kind);
        assert_eq!(
            p.load().expect("load").as_deref(),
            Some(&b"previous blob"[..]),
            "a failed delete removes nothing"
        );
        assert!(
            marker(_dir.path()).exists(),
            "a failed delete keeps the marker"
        );
    }
}

#[test]
fn blobs_over_the_stores_limit_are_refused_before_anything_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MemoryStore {
        max_size: Some(16),
        ..MemoryStore::default()
    };
    let p = SecretStorePersistence::new(dir.path().join("c"), store.clone()).expect("new");
    assert_eq!(p.describe().capabilities.max_size, Some(16));
    p.save(&[7; 16]).expect("at the limit");
    let err = p.save(&[8; 17]).expect_err("over the limit");
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert_eq!(p.load().expect("load"), Some(vec![7; 16]));
}

#[test]
fn a_cache_directory_that_cannot_exist_fails_before_the_secret_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("file"), b"").expect("file");
    let store = MemoryStore::default();
    let p = SecretStorePersistence::new(dir.path().join("file/sub/c"), store.clone()).expect("new");
    let err = p.save(b"blob").expect_err("no directory there");
    // Unix says ENOTDIR; Windows says "path not found", an I/O error of its own.
    #[cfg(unix)]
    assert_eq!(err.kind(), ErrorKind::StorageUnavailable);
    #[cfg(not(unix))]
    let _ = err;
    assert_eq!(store.item().secret, None, "the store was not touched");
}

#[test]
fn a_marker_that_cannot_be_rewritten_fails_the_save_before_the_secret_changes() {
    let (dir, store, p) = setup();
    p.save(b"previous blob").expect("save");
    let marker = marker(dir.path());
    fs::remove_file(&marker).expect("remove marker");
    fs::create_dir(&marker).expect("a directory in its place");
    fs::write(marker.join("x"), b"").expect("not empty");
    let err = p.save(b"new blob").expect_err("marker cannot be replaced");
    assert_ne!(err.kind(), ErrorKind::Other, "{err}");
    assert_eq!(store.item().secret.as_deref(), Some(&b"previous blob"[..]));
}

#[test]
fn describe_declares_encryption_and_debug_shows_no_blob() {
    let (dir, _store, p) = setup();
    p.save(b"very secret refresh token").expect("save");
    let d = p.describe();
    assert_eq!(d.backend, "memory-store");
    assert!(d.capabilities.encrypts_at_rest);
    assert!(d.capabilities.exclusive_lock && d.capabilities.change_detection);
    assert!(d.location.contains("in-memory test item"), "{}", d.location);
    assert!(
        d.location
            .contains(&marker(dir.path()).display().to_string()),
        "{}",
        d.location
    );
    assert!(!format!("{p:?}").contains("very secret"));
}

#[test]
fn a_path_without_a_file_name_is_an_invalid_name() {
    let err = SecretStorePersistence::new("/", MemoryStore::default()).expect_err("no name");
    assert_eq!(err.kind(), ErrorKind::InvalidName);
}

#[test]
fn the_probe_writes_reads_and_deletes_its_own_item() {
    let store = MemoryStore::default();
    validate_store(&store).expect("usable");
    let item = store.item();
    assert_eq!(item.secret, None, "nothing left behind");
    assert_eq!((item.created, item.deleted), (1, 1));
}

#[test]
fn the_probe_reports_failures_with_their_kinds() {
    let store = MemoryStore::default();
    store.fail_next(StoreFailure::Locked);
    let err = validate_store(&store).expect_err("locked");
    assert_eq!(err.kind(), ErrorKind::AccessDenied);
    assert!(err.to_string().contains("locked"), "{err}");

    store.fail_next(StoreFailure::Unavailable);
    let err = validate_store(&store).expect_err("no store");
    assert_eq!(err.kind(), ErrorKind::StorageUnavailable);

    let garbling = MemoryStore {
        garbles: true,
        ..MemoryStore::default()
    };
    let err = validate_store(&garbling).expect_err("reads back other data");
    assert_eq!(err.kind(), ErrorKind::Other);
    assert_eq!(garbling.item().secret, None, "deleted anyway");
}

#[test]
fn the_probe_deletes_its_item_even_when_reading_it_back_fails() {
    /// Fails every read.
    #[derive(Debug, Default)]
    struct Unreadable(MemoryStore);
    impl SecretStore for Unreadable {
        fn backend(&self) -> &str {
            "unreadable"
        }
        fn location(&self) -> String {
            "unreadable item".into()
        }
        fn get(&self) -> Result<Option<Vec<u8>>, StoreError> {
            Err(StoreError::bare(StoreFailure::Denied))
        }
        fn set(&self, secret: &[u8]) -> Result<(), StoreError> {
            self.0.set(secret)
        }
        fn delete(&self) -> Result<bool, StoreError> {
            self.0.delete()
        }
    }
    let store = Unreadable::default();
    let err = validate_store(&store).expect_err("unreadable");
    assert_eq!(err.kind(), ErrorKind::AccessDenied);
    assert_eq!(store.0.item().secret, None, "deleted anyway");
}
