//! Lock hand-off latency between two processes: from the moment the holder releases to the
//! moment a process already waiting holds the lock. Ours (`FileLock`) next to the baseline
//! of a blocking `flock` on an open file, whose waiter the kernel wakes directly, measured
//! in the same run. Targets: median at most 3 times the baseline's, 99th percentile at most
//! 5 times. Then each step of one hand-off timed alone (`support/handoff_steps.rs`), to show where
//! the time goes.
//!
//! The bench binary is its own holder process: with `HANDOFF_WORKER` set it takes the lock
//! when told to, and on "release" prints the wall-clock time of its release. Both processes
//! run on one machine, so their wall clocks agree to well under the latencies measured.

use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use identity_cache_persistence::lock::FileLock;

#[cfg(unix)]
#[path = "support/handoff_steps.rs"]
mod steps;

const ROUNDS: usize = 200;
/// How long the waiter waits before the holder releases, so that it is really waiting.
const SETTLE: Duration = Duration::from_millis(5);

fn main() {
    if let Ok(kind) = std::env::var("HANDOFF_WORKER") {
        let path = PathBuf::from(std::env::var_os("HANDOFF_PATH").expect("path"));
        holder(&kind, &path);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; there is nothing to list.
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let ours = measure("ours", &dir.path().join("msal.cache.lockfile"));
    let flock = measure("flock", &dir.path().join("baseline.flock"));
    println!(
        "RESULT lock hand-off between two processes ({ROUNDS} rounds): FileLock median {:?}, p99 {:?}; \
         baseline blocking flock median {:?}, p99 {:?}",
        ours.0, ours.1, flock.0, flock.1
    );
    print_steps(dir.path(), flock.0, ours.0);
    // Machine-readable, for ci/bench_report.py.
    for (name, value) in [
        ("handoff.ours.median_ns", ours.0),
        ("handoff.ours.p99_ns", ours.1),
        ("handoff.flock.median_ns", flock.0),
        ("handoff.flock.p99_ns", flock.1),
    ] {
        println!("METRIC {name} {}", value.as_nanos());
    }
}

/// Where the time of one hand-off goes: each step on its own, and the kernel's wake-up
/// (step 3) is the baseline's median.
#[cfg(unix)]
fn print_steps(dir: &Path, flock: Duration, ours: Duration) {
    let steps = steps::steps(dir);
    let mut profile: Vec<String> = steps
        .iter()
        .map(|(step, d)| format!("{step} {d:?}"))
        .collect();
    profile.insert(
        2,
        format!("3. kernel wakes the helper (blocking flock baseline) {flock:?}"),
    );
    let sum: Duration = steps.iter().map(|(_, d)| *d).sum::<Duration>() + flock;
    println!(
        "RESULT hand-off, step by step (medians of each step alone, same run): {}; sum {sum:?} against the measured median {ours:?}",
        profile.join("; "),
    );
}

/// The steps are Unix system calls (see `support/handoff_steps.rs`).
#[cfg(not(unix))]
fn print_steps(_dir: &Path, _flock: Duration, _ours: Duration) {}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
}

/// Median and 99th percentile of the hand-off latency.
fn measure(kind: &str, path: &Path) -> (Duration, Duration) {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .env("HANDOFF_WORKER", kind)
        .env("HANDOFF_PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn holder");
    let mut to = child.stdin.take().expect("stdin");
    let mut from = BufReader::new(child.stdout.take().expect("stdout"));
    let mut latencies = Vec::with_capacity(ROUNDS);
    // One lock value for all rounds, as a program keeps its `FilePersistence`: what is
    // set up once per value (the guard file's open) is not part of a hand-off.
    let lock = Arc::new(Lock::new(kind, path));
    for _ in 0..ROUNDS {
        say(&mut to, "hold");
        expect_line(&mut from);
        let waiter = {
            let lock = Arc::clone(&lock);
            std::thread::spawn(move || {
                let held = lock.take();
                let at = now();
                drop(held);
                at
            })
        };
        std::thread::sleep(SETTLE);
        say(&mut to, "release");
        let released: u128 = expect_line(&mut from).trim().parse().expect("nanos");
        let acquired = waiter.join().expect("waiter").as_nanos();
        latencies.push(Duration::from_nanos(
            u64::try_from(acquired.saturating_sub(released)).unwrap_or(u64::MAX),
        ));
    }
    finish(child, to);
    latencies.sort();
    (latencies[ROUNDS / 2], latencies[ROUNDS * 99 / 100])
}

/// A lock of either kind, set up once.
enum Lock {
    Ours(FileLock),
    Flock(PathBuf),
}

impl Lock {
    fn new(kind: &str, path: &Path) -> Lock {
        match kind {
            "ours" => Lock::Ours(FileLock::new(path)),
            _ => Lock::Flock(path.to_owned()),
        }
    }

    /// Takes the lock, blocking; the returned value holds it.
    fn take(&self) -> Box<dyn std::any::Any + Send> {
        match self {
            Lock::Ours(lock) => Box::new(lock.acquire(Duration::from_secs(10)).expect("acquire")),
            Lock::Flock(path) => {
                let file = File::options()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .expect("open");
                file.lock().expect("flock");
                Box::new(file)
            }
        }
    }
}

fn holder(kind: &str, path: &Path) {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut out = std::io::stdout();
    let lock = Lock::new(kind, path);
    while let Some(Ok(line)) = lines.next() {
        if line != "hold" {
            break;
        }
        let held = lock.take();
        writeln!(out, "held")
            .and_then(|()| out.flush())
            .expect("write");
        match lines.next() {
            Some(Ok(line)) if line == "release" => {}
            _ => break,
        }
        let at = now();
        drop(held);
        writeln!(out, "{}", at.as_nanos())
            .and_then(|()| out.flush())
            .expect("write");
    }
}

fn say(to: &mut ChildStdin, line: &str) {
    writeln!(to, "{line}")
        .and_then(|()| to.flush())
        .expect("tell holder");
}

fn expect_line(from: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    from.read_line(&mut line).expect("read holder");
    line
}

fn finish(mut child: Child, to: ChildStdin) {
    drop(to);
    child.wait().expect("holder exits");
}
