//! Lock hand-off latency between two processes: from the moment the holder releases to the
//! moment a process already waiting holds the lock. Ours (`FileLock`) next to the baseline
//! of a blocking `flock` on an open file, whose waiter the kernel wakes directly, measured
//! in the same run. Targets: median at most 3 times the baseline's, 99th percentile at most
//! 5 times. Then as many hand-offs of ours again, profiled step by step inside each
//! (`support/handoff_profile.rs`), to show where the time goes; the recording is only on for
//! those, so that it costs the timed rounds nothing.
//!
//! The bench binary is its own holder process: with `HANDOFF_WORKER` set it takes the lock
//! when told to, and on "release" prints the wall-clock time of its release (and, when
//! profiled, the times of its release's steps). Both processes run on one machine, so their
//! wall clocks agree to well under the latencies measured.

use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use identity_cache_persistence::lock::FileLock;

#[path = "support/handoff_profile.rs"]
mod profile;

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
    let ours = measure("ours", &dir.path().join("msal.cache.lockfile")).0;
    let flock = measure("flock", &dir.path().join("baseline.flock")).0;
    profile::install();
    let (profiled, rounds) = measure("profile", &dir.path().join("profiled.cache.lockfile"));
    println!(
        "RESULT lock hand-off between two processes ({ROUNDS} rounds): FileLock median {:?}, p99 {:?}; \
         baseline blocking flock median {:?}, p99 {:?}",
        ours.0, ours.1, flock.0, flock.1
    );
    println!(
        "RESULT hand-off, step by step inside {ROUNDS} profiled hand-offs (median since the step before, and since the release): {}; acquire returned at {:?} (median of these rounds)",
        profile::report(&rounds),
        profiled.0,
    );
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

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
}

/// The steps of one profiled hand-off: the release time and the marks of both processes.
type Round = (u128, Vec<(&'static str, u128)>);

/// Median and 99th percentile of the hand-off latency, and each round's steps (none
/// unless profiled: nothing records them).
fn measure(kind: &str, path: &Path) -> ((Duration, Duration), Vec<Round>) {
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
    let mut rounds = Vec::new();
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
                // This process's steps, its own release's excluded.
                let marks = profile::take();
                drop(held);
                (at, marks)
            })
        };
        std::thread::sleep(SETTLE);
        say(&mut to, "release");
        // The waiter first, the holder's answer after: a thread blocked reading the answer
        // would be woken in the middle of the hand-off it measures.
        let (acquired, mut marks) = waiter.join().expect("waiter");
        let acquired = acquired.as_nanos();
        let answer = expect_line(&mut from);
        let mut answer = answer.trim().splitn(2, ' ');
        let released: u128 = answer.next().unwrap_or("").parse().expect("nanos");
        marks.extend(profile::decode(answer.next().unwrap_or("")));
        rounds.push((released, marks));
        latencies.push(Duration::from_nanos(
            u64::try_from(acquired.saturating_sub(released)).unwrap_or(u64::MAX),
        ));
    }
    finish(child, to);
    latencies.sort();
    (
        (latencies[ROUNDS / 2], latencies[ROUNDS * 99 / 100]),
        rounds,
    )
}

/// A lock of either kind, set up once.
enum Lock {
    Ours(FileLock),
    Flock(PathBuf),
}

impl Lock {
    fn new(kind: &str, path: &Path) -> Lock {
        match kind {
            "ours" | "profile" => Lock::Ours(FileLock::new(path)),
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
    if kind == "profile" {
        profile::install();
    }
    while let Some(Ok(line)) = lines.next() {
        if line != "hold" {
            break;
        }
        let held = lock.take();
        // Only the release's steps are this process's part of the hand-off.
        profile::take();
        writeln!(out, "held")
            .and_then(|()| out.flush())
            .expect("write");
        match lines.next() {
            Some(Ok(line)) if line == "release" => {}
            _ => break,
        }
        let at = now();
        drop(held);
        let marks = profile::encode(&profile::take());
        writeln!(out, "{} {marks}", at.as_nanos())
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
