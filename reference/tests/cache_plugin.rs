//! `CachePlugin`: lock, reload only when the change token moved, save only when changed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use identity_cache_persistence::{
    CachePersistence, CachePlugin, ChangeToken, Description, FilePersistence, LockGuard, Result,
};

/// Counts the loads and saves that reach the file.
#[derive(Debug)]
struct Counting {
    inner: FilePersistence,
    loads: Arc<AtomicUsize>,
    saves: Arc<AtomicUsize>,
}

impl Counting {
    fn new(path: &std::path::Path) -> Self {
        Counting {
            inner: FilePersistence::new(path).expect("new"),
            loads: Arc::default(),
            saves: Arc::default(),
        }
    }
}

impl CachePersistence for Counting {
    fn describe(&self) -> Description {
        self.inner.describe()
    }
    fn load(&self) -> Result<Option<Vec<u8>>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load()
    }
    fn save(&self, data: &[u8]) -> Result<()> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        self.inner.save(data)
    }
    fn delete(&self) -> Result<bool> {
        self.inner.delete()
    }
    fn version(&self) -> Result<Option<ChangeToken>> {
        self.inner.version()
    }
    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        self.inner.lock(wait)
    }
}

#[test]
fn reloads_only_when_another_writer_changed_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msal.cache");
    let counting = Counting::new(&path);
    let loads = counting.loads.clone();
    let plugin = CachePlugin::new(counting);

    assert_eq!(plugin.read(|d| d.map(<[u8]>::to_vec)).expect("read"), None);
    assert_eq!(loads.load(Ordering::SeqCst), 1, "first access loads");
    plugin.read(|_| ()).expect("read");
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "nothing stored, nothing changed"
    );

    plugin
        .update(|d| *d = Some(b"mine".to_vec()))
        .expect("update");
    plugin.read(|_| ()).expect("read");
    assert_eq!(loads.load(Ordering::SeqCst), 1, "own save needs no reload");

    FilePersistence::new(&path)
        .expect("new")
        .save(b"theirs")
        .expect("foreign save");
    let seen = plugin.read(|d| d.map(<[u8]>::to_vec)).expect("read");
    assert_eq!(seen.as_deref(), Some(&b"theirs"[..]));
    assert_eq!(loads.load(Ordering::SeqCst), 2, "foreign save reloads once");
}

#[test]
fn saves_only_when_the_cache_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let counting = Counting::new(&dir.path().join("msal.cache"));
    let saves = counting.saves.clone();
    let plugin = CachePlugin::new(counting);

    plugin.update(|_| ()).expect("no change");
    assert_eq!(saves.load(Ordering::SeqCst), 0);
    plugin.update(|d| *d = Some(b"x".to_vec())).expect("change");
    assert_eq!(saves.load(Ordering::SeqCst), 1);
    plugin
        .update(|d| *d = Some(b"x".to_vec()))
        .expect("same bytes");
    assert_eq!(
        saves.load(Ordering::SeqCst),
        1,
        "identical bytes are no change"
    );

    let access = plugin.begin().expect("begin");
    drop(access);
    assert_eq!(
        saves.load(Ordering::SeqCst),
        1,
        "dropped access saves nothing"
    );
}

#[test]
fn dropping_an_access_discards_its_change_and_releases_the_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msal.cache");
    let plugin = CachePlugin::new(FilePersistence::new(&path).expect("new"))
        .with_lock_wait(Duration::from_secs(2));
    let mut access = plugin.begin().expect("begin");
    access.set_data(b"uncommitted".to_vec());
    assert!(access.has_changed());
    drop(access);
    assert_eq!(plugin.read(|d| d.map(<[u8]>::to_vec)).expect("read"), None);
}

#[test]
fn the_blob_is_opaque_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msal.cache");
    let plugin = CachePlugin::new(FilePersistence::new(&path).expect("new"));
    let odd: Vec<u8> = vec![0xff, 0xfe, 0, b'{', b'\n', 0x80, b' ', b' '];
    plugin.update(|d| *d = Some(odd.clone())).expect("update");
    assert_eq!(std::fs::read(&path).expect("read"), odd, "stored as given");
    let other = CachePlugin::new(FilePersistence::new(&path).expect("new"));
    assert_eq!(
        other.read(|d| d.map(<[u8]>::to_vec)).expect("read"),
        Some(odd)
    );
}

#[test]
fn threads_sharing_one_plugin_lose_no_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = Arc::new(CachePlugin::new(
        FilePersistence::new(dir.path().join("msal.cache")).expect("new"),
    ));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let plugin = plugin.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    plugin.update(increment).expect("update");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let count = plugin.read(parse).expect("read");
    assert_eq!(count, 200);
}

#[test]
fn two_plugins_on_one_file_see_each_others_updates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msal.cache");
    let a = CachePlugin::new(FilePersistence::new(&path).expect("new"));
    let b = CachePlugin::new(FilePersistence::new(&path).expect("new"));
    for _ in 0..100 {
        a.update(increment).expect("a");
        b.update(increment).expect("b");
    }
    assert_eq!(a.read(parse).expect("read"), 200);
}

fn parse(data: Option<&[u8]>) -> u64 {
    data.map_or(0, |d| {
        std::str::from_utf8(d)
            .expect("utf8")
            .parse()
            .expect("a number")
    })
}

fn increment(data: &mut Option<Vec<u8>>) {
    let next = parse(data.as_deref()) + 1;
    *data = Some(next.to_string().into_bytes());
}

#[test]
fn the_generation_moves_exactly_when_the_blob_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cache");
    let plugin = CachePlugin::new(FilePersistence::new(&path).expect("new"));
    let other = CachePlugin::new(FilePersistence::new(&path).expect("new"));
    let generation = |plugin: &CachePlugin<FilePersistence>| {
        let access = plugin.begin().expect("begin");
        let generation = access.generation();
        access.commit().expect("commit");
        generation
    };

    let first = generation(&plugin);
    assert_eq!(generation(&plugin), first, "nothing changed");
    plugin
        .update(|d| *d = Some(b"own".to_vec()))
        .expect("update");
    let after_own = generation(&plugin);
    assert_ne!(after_own, first, "its own save replaced the blob");
    assert_eq!(generation(&plugin), after_own, "nothing changed since");
    other
        .update(|d| *d = Some(b"other".to_vec()))
        .expect("update");
    assert_ne!(generation(&plugin), after_own, "another writer's save");
}

#[test]
fn a_detached_access_keeps_the_lock_across_threads_and_commits_when_resumed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cache");
    let plugin = Arc::new(CachePlugin::new(FilePersistence::new(&path).expect("new")));
    let detached = plugin.begin().expect("begin").detach();
    let contender = CachePlugin::new(FilePersistence::new(&path).expect("new"))
        .with_lock_wait(Duration::from_millis(200));
    assert!(contender.begin().is_err(), "the lock is still held");
    let resumed = std::thread::spawn({
        let plugin = Arc::clone(&plugin);
        move || {
            let mut access = plugin.resume(detached);
            access.set_data(b"saved".to_vec());
            access.commit()
        }
    });
    resumed.join().expect("thread").expect("commit");
    assert_eq!(
        contender.read(|d| d.map(<[u8]>::to_vec)).expect("read"),
        Some(b"saved".to_vec())
    );
}
