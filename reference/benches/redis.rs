//! Save, load and lock of `RedisPersistence` next to the raw Redis commands of the same
//! payload, sent by the same `redis` client to the same server in the same run (a
//! `redis-server` started for the run on 127.0.0.1, no persistence, like
//! `redis-benchmark`'s SET/GET):
//!
//! - save: our script (bump the counter, `HSET` blob and version) vs a plain `SET`;
//! - load: our `HMGET` of blob and version vs a plain `GET`;
//! - lock: our `lock` + `release` (`SET NX PX`, a watchdog thread started and stopped, a
//!   token-checked `DEL` by script) vs a bare `SET NX PX` + `DEL`.
//!
//! Each round runs the raw command and ours back to back, so both see the same machine;
//! the medians and their ratio are printed as `RESULT` lines.
//! `cargo bench -p identity-cache-persistence --bench redis`. Without `redis-server` it
//! prints SKIP and measures nothing.

#[path = "../tests/redis_support/mod.rs"]
mod redis_support;

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use identity_cache_persistence::{CachePersistence, RedisPersistence};
use redis_support::{MISSING, RedisServer, installed};

/// Payload sizes and how many rounds each gets.
const SIZES: [(usize, &str, usize); 3] = [
    (2 * 1024, "2 KiB", 2000),
    (100 * 1024, "100 KiB", 500),
    (1024 * 1024, "1 MiB", 100),
];
const LOCK_ROUNDS: usize = 2000;

fn main() {
    // `cargo test --benches` runs benches with `--bench` absent: measure only when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if !installed() {
        eprintln!("SKIP redis bench: {MISSING}");
        return;
    }
    let server = RedisServer::start(&[]);
    let mut raw = server.admin();
    let ours = RedisPersistence::new(&server.url(), "bench").expect("persistence");
    for (size, label, rounds) in SIZES {
        let data = vec![b'x'; size];
        let save = compare(
            rounds,
            || {
                redis::cmd("SET")
                    .arg("raw")
                    .arg(&data[..])
                    .query::<()>(&mut raw)
                    .expect("SET")
            },
            || ours.save(&data).expect("save"),
        );
        report(&format!("save {label}"), "SET", save);
        let load = compare(
            rounds,
            || {
                black_box(
                    redis::cmd("GET")
                        .arg("raw")
                        .query::<Vec<u8>>(&mut raw)
                        .expect("GET"),
                );
            },
            || {
                black_box(ours.load().expect("load"));
            },
        );
        report(&format!("load {label}"), "GET", load);
    }
    let lock = compare(
        LOCK_ROUNDS,
        || {
            let taken: Option<String> = redis::cmd("SET")
                .arg("raw-lock")
                .arg("token")
                .arg("NX")
                .arg("PX")
                .arg(3000)
                .query(&mut raw)
                .expect("SET NX");
            assert!(taken.is_some());
            redis::cmd("DEL")
                .arg("raw-lock")
                .query::<()>(&mut raw)
                .expect("DEL");
        },
        || {
            ours.lock(Duration::ZERO)
                .expect("lock")
                .release()
                .expect("release")
        },
    );
    report("lock + release", "SET NX PX + DEL", lock);
}

/// Medians of `raw` and `ours` over `rounds` rounds, each round running both.
fn compare(rounds: usize, mut raw: impl FnMut(), mut ours: impl FnMut()) -> (Duration, Duration) {
    // Warm up: connections opened, scripts loaded, allocations sized.
    for _ in 0..rounds.div_ceil(10) {
        raw();
        ours();
    }
    let mut raw_times = Vec::with_capacity(rounds);
    let mut our_times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        raw();
        raw_times.push(start.elapsed());
        let start = Instant::now();
        ours();
        our_times.push(start.elapsed());
    }
    (median(raw_times), median(our_times))
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn report(what: &str, baseline: &str, (raw, ours): (Duration, Duration)) {
    println!(
        "RESULT redis {what}: RedisPersistence median {ours:?}, raw {baseline} {raw:?}; ratio {:.2}",
        ours.as_secs_f64() / raw.as_secs_f64()
    );
}
