//! Real processes against one cache file: SIGKILL during saves and while holding the lock,
//! and four processes doing read-modify-write increments.
//!
//! The test binary is its own worker: `main` runs a worker role when `CACHE_TEST_ROLE` is
//! set, and the tests otherwise.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use identity_cache_persistence::{CachePersistence, CachePlugin, FilePersistence};
use libtest_mimic::{Arguments, Failed, Trial};

const ROLE: &str = "CACHE_TEST_ROLE";
const PATH: &str = "CACHE_TEST_PATH";
const COUNT: &str = "CACHE_TEST_COUNT";

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let path = PathBuf::from(std::env::var_os(PATH).expect("worker needs a path"));
        match role.as_str() {
            "saver" => saver(&path),
            "holder" => holder(&path),
            "incrementer" => incrementer(&path),
            other => panic!("unknown worker role {other}"),
        }
        return;
    }
    let trials = vec![
        Trial::test("killed_saver_never_leaves_a_torn_or_empty_cache", || {
            killed_saver_never_leaves_a_torn_or_empty_cache()
        }),
        Trial::test("killed_lock_holder_does_not_block_the_next_process", || {
            killed_lock_holder_does_not_block_the_next_process()
        }),
        Trial::test("four_processes_lose_no_increment", || {
            four_processes_lose_no_increment()
        }),
    ];
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}

// ---- blobs that check themselves -------------------------------------------------------

/// `seq:len:` followed by `len` copies of one byte derived from `seq`.
fn blob(seq: u64) -> Vec<u8> {
    let len = 1024 + (seq as usize * 7919) % (768 * 1024);
    let mut data = format!("{seq}:{len}:").into_bytes();
    data.resize(data.len() + len, fill(seq));
    data
}

fn fill(seq: u64) -> u8 {
    b'a' + (seq % 26) as u8
}

/// Whether `data` is exactly one whole blob made by [`blob`].
fn check_blob(data: &[u8]) -> Result<u64, String> {
    let text_end = data.iter().take(40).filter(|&&b| b == b':').count();
    if text_end < 2 {
        return Err(format!("no header in a blob of {} bytes", data.len()));
    }
    let mut parts = data.splitn(3, |&b| b == b':');
    let seq: u64 = parse(parts.next())?;
    let len: usize = parse(parts.next())?;
    let payload = parts.next().unwrap_or_default();
    if payload.len() != len {
        return Err(format!(
            "blob {seq}: {} of {len} payload bytes",
            payload.len()
        ));
    }
    if let Some(at) = payload.iter().position(|&b| b != fill(seq)) {
        return Err(format!("blob {seq}: foreign byte at {at}"));
    }
    Ok(seq)
}

fn parse<T: std::str::FromStr>(part: Option<&[u8]>) -> Result<T, String> {
    part.and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| "bad header".to_owned())
}

// ---- workers ---------------------------------------------------------------------------

fn saver(path: &Path) {
    let p = FilePersistence::new(path).expect("new");
    let start: u64 = std::process::id().into();
    for i in 0.. {
        p.save(&blob(start * 1_000_000 + i)).expect("save");
        if i == 0 {
            println!("saving");
        }
    }
}

fn holder(path: &Path) {
    let p = FilePersistence::new(path).expect("new");
    let _guard = p.lock(Duration::from_secs(10)).expect("lock");
    println!("locked");
    std::thread::sleep(Duration::from_secs(600));
}

fn incrementer(path: &Path) {
    let count: u32 = std::env::var(COUNT)
        .expect("count")
        .parse()
        .expect("number");
    let plugin = CachePlugin::new(FilePersistence::new(path).expect("new"));
    let mut longest = Duration::ZERO;
    for _ in 0..count {
        let started = Instant::now();
        let access = plugin.begin().expect("begin");
        longest = longest.max(started.elapsed());
        let mut access = access;
        let next = access
            .data()
            .map_or(0, |d| String::from_utf8_lossy(d).parse::<u64>().expect("n"))
            + 1;
        access.set_data(next.to_string().into_bytes());
        access.commit().expect("commit");
    }
    println!("longest_wait_us={}", longest.as_micros());
}

fn spawn(role: &str, path: &Path, extra: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    cmd.env(ROLE, role)
        .env(PATH, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn worker")
}

/// Waits for the worker's first line of output.
fn first_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read worker");
    line
}

fn kill(child: &mut Child) {
    let _ = child.kill(); // SIGKILL on Unix
    let _ = child.wait();
}

// ---- tests -----------------------------------------------------------------------------

fn killed_saver_never_leaves_a_torn_or_empty_cache() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("msal.cache");
    let p = FilePersistence::new(&path)?;
    p.save(&blob(0))?;

    // A reader races the savers the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || -> Result<u32, String> {
            let p = FilePersistence::new(&path).map_err(|e| e.to_string())?;
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let data = p
                    .load()
                    .map_err(|e| e.to_string())?
                    .ok_or("cache vanished")?;
                check_blob(&data)?;
                reads += 1;
            }
            Ok(reads)
        })
    };

    for round in 0..30u64 {
        let mut saver = spawn("saver", &path, &[]);
        first_line(&mut saver);
        std::thread::sleep(Duration::from_millis(2 + (round * 7) % 40));
        kill(&mut saver);
        let data = p.load()?.ok_or("cache vanished after a kill")?;
        check_blob(&data).map_err(|e| format!("round {round}: {e}"))?;
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().map_err(|_| "reader panicked")??;
    if reads == 0 {
        return Err("the reader never read".into());
    }
    // The killed savers' temporary files are swept by the next persistence's first save.
    FilePersistence::new(&path)?.save(&blob(1))?;
    let left: Vec<_> = std::fs::read_dir(dir.path())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    if left != ["msal.cache"] {
        return Err(format!("files left behind: {left:?}").into());
    }
    Ok(())
}

fn killed_lock_holder_does_not_block_the_next_process() -> Result<(), Failed> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("msal.cache");
    let p = FilePersistence::new(&path)?;
    for _ in 0..3 {
        let mut holder = spawn("holder", &path, &[]);
        assert_eq!(first_line(&mut holder).trim(), "locked");
        let blocked = p.lock(Duration::from_millis(200));
        if blocked.is_ok() {
            return Err("the lock was taken while a live process held it".into());
        }
        kill(&mut holder);
        let started = Instant::now();
        let guard = p.lock(Duration::from_secs(10))?;
        let took = started.elapsed();
        drop(guard);
        if took > Duration::from_secs(1) {
            return Err(format!("recovering the dead holder's lock took {took:?}").into());
        }
    }
    Ok(())
}

fn four_processes_lose_no_increment() -> Result<(), Failed> {
    const PROCESSES: u32 = 4;
    const EACH: u32 = 500;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("msal.cache");
    let started = Instant::now();
    let mut workers: Vec<Child> = (0..PROCESSES)
        .map(|_| spawn("incrementer", &path, &[(COUNT, EACH.to_string())]))
        .collect();
    let mut longest = Vec::new();
    for worker in &mut workers {
        let line = first_line(worker);
        let status = worker.wait()?;
        if !status.success() {
            return Err(format!("a worker failed: {status}").into());
        }
        longest.push(line.trim().to_owned());
    }
    let elapsed = started.elapsed();
    let total: u64 = String::from_utf8(std::fs::read(&path)?)?.parse()?;
    eprintln!(
        "{PROCESSES} processes x {EACH} increments in {elapsed:?}; {}",
        longest.join(", ")
    );
    if total != u64::from(PROCESSES * EACH) {
        return Err(format!("lost updates: {total} of {}", PROCESSES * EACH).into());
    }
    // The lock file and the waiters' tickets are gone with the last holder; the lock's
    // guard file and the line's directory stay (they are never removed), the line empty.
    let mut left: Vec<_> = std::fs::read_dir(dir.path())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    left.sort();
    left.retain(|name| name != "msal.cache.lockfile.queue");
    if left != ["msal.cache", "msal.cache.lockfile.guard"] {
        return Err(format!("files left behind: {left:?}").into());
    }
    let line = dir.path().join("msal.cache.lockfile.queue");
    if line.exists() && std::fs::read_dir(&line)?.count() != 0 {
        return Err("tickets left in the line".into());
    }
    Ok(())
}
