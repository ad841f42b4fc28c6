//! Read-modify-write increments under the lock: four processes sharing one cache against
//! one process doing the same number of increments back to back, in the same run.
//!
//! Prints the throughput ratio (target: at least 0.80), the longest single wait for the
//! lock (target: under 50 ms) and the lost updates (must be 0). The bench binary is its
//! own worker: with `CONTENTION_WORKER` set it runs increments and reports its timings.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use identity_cache_persistence::{CachePlugin, FilePersistence};

const TOTAL: u32 = 2000;
const ROUNDS: usize = 3;

fn main() {
    if let Ok(count) = std::env::var("CONTENTION_WORKER") {
        let path = std::env::var_os("CONTENTION_PATH").expect("path");
        let count: u32 = count.parse().expect("count");
        let longest = increments(Path::new(&path), count);
        println!("{}", longest.as_micros());
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benches; there is nothing to list.
    }
    let mut ratios = Vec::new();
    let mut longest_wait = Duration::ZERO;
    let mut lost = 0;
    for round in 1..=ROUNDS {
        let single = run(1);
        let four = run(4);
        longest_wait = longest_wait.max(four.longest_wait);
        lost += four.lost + single.lost;
        let ratio = single.elapsed.as_secs_f64() / four.elapsed.as_secs_f64();
        ratios.push(ratio);
        println!(
            "round {round}: 1 process {:?} ({:.0}/s), 4 processes {:?} ({:.0}/s), ratio {ratio:.2}, longest wait {:?}, lost {}",
            single.elapsed,
            f64::from(TOTAL) / single.elapsed.as_secs_f64(),
            four.elapsed,
            f64::from(TOTAL) / four.elapsed.as_secs_f64(),
            four.longest_wait,
            four.lost + single.lost,
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "RESULT cache plugin read-modify-write, 4 processes vs 1 process back to back: median throughput ratio {:.2} (target >= 0.80), longest wait for the lock {:?} (target < 50 ms), lost updates {lost}",
        ratios[ratios.len() / 2],
        longest_wait
    );
}

struct Outcome {
    elapsed: Duration,
    longest_wait: Duration,
    lost: u64,
}

/// `TOTAL` increments shared among `processes` worker processes.
fn run(processes: u32) -> Outcome {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let path = dir.path().join("msal.cache");
    let started = Instant::now();
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(std::env::current_exe().expect("exe"))
                .env("CONTENTION_WORKER", (TOTAL / processes).to_string())
                .env("CONTENTION_PATH", &path)
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut longest_wait = Duration::ZERO;
    for mut child in children {
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert!(child.wait().expect("wait").success(), "worker failed");
        longest_wait = longest_wait.max(Duration::from_micros(line.trim().parse().expect("us")));
    }
    let elapsed = started.elapsed();
    let total: u64 = String::from_utf8(std::fs::read(&path).expect("read"))
        .expect("utf8")
        .parse()
        .expect("number");
    Outcome {
        elapsed,
        longest_wait,
        lost: u64::from(TOTAL) - total,
    }
}

/// `count` locked increments; returns the longest wait for the lock.
fn increments(path: &Path, count: u32) -> Duration {
    let plugin = CachePlugin::new(FilePersistence::new(path).expect("new"));
    let mut longest = Duration::ZERO;
    for _ in 0..count {
        let started = Instant::now();
        let mut access = plugin.begin().expect("begin");
        longest = longest.max(started.elapsed());
        let next = access
            .data()
            .map_or(0, |d| String::from_utf8_lossy(d).parse::<u64>().expect("n"))
            + 1;
        access.set_data(next.to_string().into_bytes());
        access.commit().expect("commit");
    }
    longest
}
