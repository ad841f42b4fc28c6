//! The cross-process lock against real files, real processes and real SIGKILLs.
//!
//! Worker processes are this test binary run again with `LOCK_TEST_WORKER` set: the test
//! `worker` then plays the role named there and every other test is filtered out. Workers
//! report on stdout in lines starting with `@@ `, so libtest's own output is ignored.

#![cfg(unix)]

use std::{
    fs,
    io::{Read, Write},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use identity_cache_persistence::{
    ErrorKind, HeldLock,
    lock::{FileLock, GRACE, Liveness, LockState},
};
use support::{Worker, dead_pid, set_age};

const LONG: Duration = Duration::from_secs(20);

/// The worker roles; does nothing in a normal test run.
#[test]
fn worker() {
    support::run_worker_if_asked();
}

#[test]
fn threads_of_one_process_are_serialised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lock_path = dir.path().join("c.lockfile");
    let counter = dir.path().join("counter");
    fs::write(&counter, "0").expect("write");
    let inside = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            // A FileLock value per thread: the registry, not the value, serialises.
            let lock = FileLock::new(&lock_path);
            let (counter, inside) = (counter.clone(), Arc::clone(&inside));
            std::thread::spawn(move || {
                for _ in 0..40 {
                    let guard = lock.acquire(LONG).expect("acquire");
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    let n: u64 = fs::read_to_string(&counter)
                        .expect("read")
                        .parse()
                        .expect("number");
                    std::thread::sleep(Duration::from_micros(200));
                    fs::write(&counter, (n + 1).to_string()).expect("write");
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(guard);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread ok");
    }
    assert_eq!(fs::read_to_string(&counter).expect("read"), "240");
    assert!(
        !lock_path.exists(),
        "the last release removes the lock file"
    );
}

#[test]
fn two_file_lock_values_in_one_process_exclude_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = FileLock::new(dir.path().join("x.lockfile"));
    // The same file through another spelling of its path.
    let b = FileLock::new(dir.path().join(".").join("x.lockfile"));
    let held = a.acquire(LONG).expect("acquire a");
    let started = Instant::now();
    let err = b
        .acquire(Duration::from_millis(150))
        .expect_err("b must wait");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(err.kind(), ErrorKind::LockTimeout);
    assert!(err.to_string().contains("this process"), "{err}");
    drop(held);
    let again = b.acquire(LONG).expect("free again");
    Box::new(again).release().expect("release");
}

#[test]
fn timeout_names_the_file_and_the_live_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.lockfile");
    let mut holder = Worker::hold(&path, None);
    let err = FileLock::new(&path)
        .acquire(Duration::from_millis(200))
        .expect_err("held by the worker");
    assert_eq!(err.kind(), ErrorKind::LockTimeout);
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("pid {} (alive", holder.pid())),
        "{message}"
    );
    match FileLock::new(&path).inspect().expect("inspect") {
        LockState::Held(h) => {
            assert_eq!(h.pid, Some(holder.pid()));
            assert!(h.os_locked);
        }
        other => panic!("expected held, got {other:?}"),
    }
    holder.kill();
}

#[test]
fn a_file_naming_a_dead_pid_is_recovered_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("d.lockfile");
    let pid = dead_pid();
    fs::write(&path, format!("{pid} /usr/bin/python3 az")).expect("write");
    assert!(matches!(
        FileLock::new(&path).inspect().expect("inspect"),
        LockState::Stale(h, _) if h.pid == Some(pid) && h.liveness == Some(Liveness::Dead)
    ));
    let started = Instant::now();
    let guard = FileLock::new(&path).acquire(LONG).expect("recovered");
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    let content = fs::read_to_string(&path).expect("read");
    assert!(
        content.starts_with(&format!("{} ", std::process::id())),
        "{content}"
    );
    drop(guard);
}

#[test]
fn a_zero_wait_tries_once_and_still_recovers_a_stale_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("z.lockfile");
    fs::write(&path, format!("{} gone", dead_pid())).expect("write");
    let guard = FileLock::new(&path)
        .acquire(Duration::ZERO)
        .expect("the stale file is removed and the lock taken");
    let err = FileLock::new(&path)
        .acquire(Duration::ZERO)
        .expect_err("held");
    assert_eq!(err.kind(), ErrorKind::LockTimeout);
    drop(guard);
    FileLock::new(&path)
        .acquire(Duration::ZERO)
        .expect("free again");
}

#[test]
fn an_empty_file_is_stale_only_after_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("e.lockfile");
    // Fresh and empty: a holder between its create and its write. Not broken.
    fs::write(&path, "").expect("write");
    let err = FileLock::new(&path)
        .acquire(Duration::from_millis(300))
        .expect_err("fresh empty file is respected");
    assert_eq!(err.kind(), ErrorKind::LockTimeout);
    assert!(path.exists());
    // Old and empty: its holder died before writing. Recovered at once.
    set_age(&path, Duration::from_secs(10));
    let started = Instant::now();
    let guard = FileLock::new(&path).acquire(LONG).expect("recovered");
    assert!(started.elapsed() < Duration::from_millis(200));
    drop(guard);
    // And a fresh empty file is recovered by itself once the grace period has passed.
    fs::write(&path, "").expect("write");
    let started = Instant::now();
    let guard = FileLock::new(&path).acquire(LONG).expect("recovered");
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_millis(1500) && waited < Duration::from_millis(3000),
        "{waited:?}"
    );
    drop(guard);
}

#[test]
fn a_live_holder_without_an_os_lock_is_not_broken() {
    // MSAL Node and Python's filelock variant hold the lock by the file's existence only.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("n.lockfile");
    let mut sleeper = std::process::Command::new("sleep")
        .arg("5")
        .spawn()
        .expect("spawn sleep");
    fs::write(&path, sleeper.id().to_string()).expect("write");
    let err = FileLock::new(&path)
        .acquire(Duration::from_millis(400))
        .expect_err("live holder");
    assert_eq!(err.kind(), ErrorKind::LockTimeout);
    assert!(
        err.to_string()
            .contains(&format!("pid {} (alive)", sleeper.id())),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&path).expect("still there"),
        sleeper.id().to_string()
    );
    // Its holder dies without cleaning up (and is reaped): recovered.
    sleeper.kill().expect("kill");
    sleeper.wait().expect("reap");
    FileLock::new(&path).acquire(LONG).expect("recovered");
}

#[cfg(target_os = "linux")]
#[test]
fn a_reused_pid_does_not_keep_a_lock_alive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.lockfile");
    let mut sleeper = std::process::Command::new("sleep")
        .arg("5")
        .spawn()
        .expect("spawn sleep");
    // Written an hour before this process started: its pid cannot be the writer.
    fs::write(&path, format!("{} node", sleeper.id())).expect("write");
    set_age(&path, Duration::from_secs(3600));
    assert!(matches!(
        FileLock::new(&path).inspect().expect("inspect"),
        LockState::Stale(h, _) if h.liveness == Some(Liveness::Reused)
    ));
    let started = Instant::now();
    FileLock::new(&path).acquire(LONG).expect("recovered");
    assert!(started.elapsed() < Duration::from_millis(200));
    sleeper.kill().expect("kill");
    sleeper.wait().expect("reap");
}

/// A wait of `Duration::MAX` (no deadline can be computed) waits for as long as the holder
/// holds, here longer than `GRACE` and any poll bound.
#[test]
fn an_unbounded_wait_outlasts_a_long_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u.lockfile");
    let hold = Duration::from_millis(2500);
    let mut holder = Worker::hold(&path, Some(hold));
    let started = Instant::now();
    let guard = FileLock::new(&path)
        .acquire(Duration::MAX)
        .expect("taken once the holder releases");
    assert!(started.elapsed() >= hold / 2, "{:?}", started.elapsed());
    drop(guard);
    holder.kill();
}

#[test]
fn a_sigkilled_holder_does_not_block_the_next_acquirer() {
    for reap in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.lockfile");
        let mut holder = Worker::hold(&path, None);
        // SIGKILL; without reaping the holder stays a zombie for a while.
        holder.sigkill(reap);
        let started = Instant::now();
        let guard = FileLock::new(&path).acquire(LONG).expect("recovered");
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_millis(200),
            "reap={reap}: {waited:?}"
        );
        drop(guard);
        holder.kill();
    }
}

/// Waits until the worker `pid` has a ticket in the line of the lock at `path`.
fn wait_in_line(path: &Path, pid: u32) {
    let mut line = path.as_os_str().to_owned();
    line.push(".queue");
    let mine = format!("-{pid}");
    let until = Instant::now() + LONG;
    while Instant::now() < until {
        let queued = fs::read_dir(&line).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(&mine))
        });
        if queued {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("worker {pid} never joined the line");
}

#[test]
fn waiters_take_the_lock_in_arrival_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("o.lockfile");
    let log = dir.path().join("log");
    let guard = FileLock::new(&path).acquire(LONG).expect("acquire");
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let waiter = Worker::nester(&path, &log, 1);
        wait_in_line(&path, waiter.pid());
        waiters.push(waiter);
    }
    let arrival: Vec<String> = waiters.iter().map(|w| w.pid().to_string()).collect();
    drop(guard);
    for waiter in waiters {
        waiter.finish_nester();
    }
    let served: Vec<String> = fs::read_to_string(&log)
        .expect("log")
        .lines()
        .filter_map(|line| line.strip_prefix("< ").map(str::to_owned))
        .collect();
    assert_eq!(served, arrival);
}

#[test]
fn a_waiter_killed_in_line_holds_nobody_up() {
    for reap in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.lockfile");
        let guard = FileLock::new(&path).acquire(LONG).expect("acquire");
        // The first in line is killed; the second must get the lock at once.
        let mut first = Worker::waiter(&path, Duration::from_millis(10));
        wait_in_line(&path, first.pid());
        let mut second = Worker::waiter(&path, Duration::from_millis(10));
        wait_in_line(&path, second.pid());
        first.sigkill(reap);
        let released = Instant::now();
        drop(guard);
        second.expect_line("acquired");
        let waited = released.elapsed();
        // Far below the 50 ms after which a waiter passes a first waiter that does not
        // take a free lock, on an idle machine: the dead ticket is seen at once.
        assert!(
            waited < Duration::from_millis(200),
            "reap={reap}: {waited:?}"
        );
        let _ = std::io::stderr().write_all(format!("reap={reap}: {waited:?}\n").as_bytes());
        second.expect_line("released");
        // The dead waiter's ticket is gone; nothing is left beside the lock but its guard
        // file and its (empty) line, which are never removed.
        FileLock::new(&path).acquire(LONG).expect("acquire again");
        let left: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .filter(|name| {
                name.as_encoded_bytes() != b"q.lockfile.guard"
                    && name.as_encoded_bytes() != b"q.lockfile.queue"
            })
            .collect();
        assert!(left.is_empty(), "reap={reap}: left behind {left:?}");
        let tickets = fs::read_dir(dir.path().join("q.lockfile.queue"))
            .expect("the line")
            .count();
        assert_eq!(tickets, 0, "reap={reap}: tickets left in line");
        first.kill();
    }
}

#[test]
fn a_stopped_first_waiter_is_passed_after_a_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.lockfile");
    let guard = FileLock::new(&path).acquire(LONG).expect("acquire");
    let mut first = stopped_first_waiter(&path);
    let mut second = Worker::waiter(&path, Duration::from_millis(10));
    wait_in_line(&path, second.pid());
    let released = Instant::now();
    drop(guard);
    second.expect_line("acquired");
    let waited = released.elapsed();
    // The bound is 50 ms of the lock looking free; far more only on a starved machine.
    assert!(
        waited >= Duration::from_millis(50) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    second.expect_line("released");
    resume(&mut first);
}

/// A process arriving while the lock is free but another waits in line takes its place
/// behind it rather than walking in: with the first waiter stopped, the newcomer gets the
/// lock only once the lock has looked free for the stall bound (50 ms).
#[test]
fn a_newcomer_queues_behind_a_waiter_in_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("n.lockfile");
    let guard = FileLock::new(&path).acquire(LONG).expect("acquire");
    let mut first = stopped_first_waiter(&path);
    drop(guard);
    let arrived = Instant::now();
    let newcomer = FileLock::new(&path)
        .acquire(LONG)
        .expect("the newcomer passes the stopped waiter");
    let waited = arrived.elapsed();
    drop(newcomer);
    resume(&mut first);
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
}

/// A process taking the lock back to back keeps it without queueing for a slice (5 ms)
/// at most while another process is in line, then queues behind it; here behind a stopped
/// waiter, which it passes only once the lock has looked free for the stall bound (50 ms).
#[test]
fn back_to_back_holds_queue_behind_a_waiter_after_a_slice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("g.lockfile");
    let lock = FileLock::new(&path);
    let guard = lock.acquire(LONG).expect("acquire");
    let mut first = stopped_first_waiter(&path);
    drop(guard);
    // Holds of 1 ms: a slice has room for four at most, then the run queues.
    let (mut in_a_row, mut most_in_a_row) = (0, 0);
    for _ in 0..20 {
        let started = Instant::now();
        let guard = lock.acquire(LONG).expect("acquire");
        if started.elapsed() >= Duration::from_millis(50) {
            in_a_row = 0;
        } else {
            in_a_row += 1;
            most_in_a_row = most_in_a_row.max(in_a_row);
        }
        std::thread::sleep(Duration::from_millis(1));
        drop(guard);
    }
    resume(&mut first);
    assert!(
        most_in_a_row <= 8,
        "{most_in_a_row} holds back to back past a waiter in line"
    );
}

/// A waiter behind a stopped first waiter passes it only once the lock has looked free for
/// the stall bound without a break: a lock taken and released again and again by a holder
/// outside the line (MSAL Node here: create, hold, unlink), free for a moment between holds,
/// never counts as stalled, so the second waiter keeps its place until those holds stop.
#[test]
fn a_lock_free_only_between_holds_is_not_a_stalled_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.lockfile");
    let guard = FileLock::new(&path).acquire(LONG).expect("acquire");
    let mut first = stopped_first_waiter(&path);
    let mut second = Worker::waiter(&path, Duration::from_millis(10));
    wait_in_line(&path, second.pid());
    drop(guard);
    // Holds of 20 ms with gaps of 1 ms for a second, each by an exclusive create naming
    // this (live) process, as MSAL Node holds it; a create that finds the file taken means
    // that the second waiter walked in.
    let until = Instant::now() + Duration::from_secs(1);
    let mut taken = 0;
    while Instant::now() < until {
        match fs::File::options().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                file.write_all(std::process::id().to_string().as_bytes())
                    .expect("write pid");
                std::thread::sleep(Duration::from_millis(20));
                fs::remove_file(&path).expect("unlink");
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => taken += 1,
            Err(e) => panic!("create: {e}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    second.expect_line("acquired");
    second.expect_line("released");
    resume(&mut first);
    assert_eq!(
        taken, 0,
        "the second waiter passed the first while the holds went on"
    );
}

/// A waiter that joins the line of the lock at `path`, which the caller holds, and is then
/// stopped (as by Ctrl-Z) while first in line: alive, its ticket still locked.
fn stopped_first_waiter(path: &Path) -> Worker {
    let first = Worker::waiter(path, Duration::from_millis(10));
    wait_in_line(path, first.pid());
    signal("-STOP", first.pid());
    // `kill` returns once the signal is queued; the process stops only when one of its
    // threads takes the signal, and until then its other threads run on. Releasing the
    // lock before every thread has stopped would let the waiting thread take the lock
    // and then be stopped holding it.
    wait_until_stopped(first.pid());
    first
}

/// Lets a stopped waiter go on, and waits until it has taken and released the lock.
fn resume(waiter: &mut Worker) {
    signal("-CONT", waiter.pid());
    waiter.expect_line("acquired");
    waiter.expect_line("released");
}

/// Sends `sig` (as `kill` takes it, e.g. `-STOP`) to `pid`.
fn signal(sig: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid}");
}

/// Waits until `pid` is stopped: on Linux every one of its threads (`T` in
/// `/proc/<pid>/task/*/stat`), elsewhere the process as `ps` reports it.
fn wait_until_stopped(pid: u32) {
    let start = Instant::now();
    while !is_stopped(pid) {
        assert!(start.elapsed() < LONG, "pid {pid} did not stop");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(target_os = "linux")]
fn is_stopped(pid: u32) -> bool {
    fs::read_dir(format!("/proc/{pid}/task"))
        .expect("list the threads")
        .all(|task| {
            let stat =
                fs::read_to_string(task.expect("thread").path().join("stat")).unwrap_or_default();
            // The state follows the command name, which is in parentheses.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
        })
}

#[cfg(not(target_os = "linux"))]
fn is_stopped(pid: u32) -> bool {
    let output = std::process::Command::new("ps")
        .args(["-o", "state=", "-p", &pid.to_string()])
        .output()
        .expect("run ps");
    String::from_utf8_lossy(&output.stdout)
        .trim_start()
        .starts_with('T')
}

#[test]
fn waiters_racing_on_one_stale_file_never_both_get_the_lock() {
    // Two processes wait on a file whose holder (a `sleep`) is alive; it is then killed
    // and both judge the file stale at about the same moment.
    let dir = tempfile::tempdir().expect("tempdir");
    let rounds = 30;
    let mut racers: Vec<Worker> = (0..2).map(|_| Worker::racer(dir.path(), rounds)).collect();
    for round in 0..rounds {
        let path = dir.path().join(format!("{round}.lockfile"));
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        fs::write(&path, format!("{} x", sleeper.id())).expect("write");
        // Let both racers start waiting on this round's file.
        fs::write(dir.path().join(format!("{round}.go")), "").expect("write");
        for racer in &mut racers {
            racer.expect_line(&format!("waiting {round}"));
        }
        std::thread::sleep(Duration::from_millis(3));
        sleeper.kill().expect("kill");
        sleeper.wait().expect("reap");
        for racer in &mut racers {
            racer.expect_line(&format!("done {round}"));
        }
    }
    // Each racer logged its hold intervals; no two may overlap.
    let mut holds = Vec::new();
    for racer in racers {
        holds.extend(racer.finish_holds());
    }
    assert_eq!(holds.len(), 2 * rounds);
    holds.sort();
    for pair in holds.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "overlapping holds (start ns, end ns): {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn release_never_deletes_a_lock_file_that_is_not_ours() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.lockfile");
    let guard = FileLock::new(&path).acquire(LONG).expect("acquire");
    // Someone breaks the protocol and replaces our file with theirs.
    fs::remove_file(&path).expect("remove");
    fs::write(&path, "4242 intruder").expect("write");
    Box::new(guard).release().expect("release");
    assert_eq!(
        fs::read_to_string(&path).expect("left alone"),
        "4242 intruder"
    );
}

#[test]
fn the_lock_file_is_private_and_names_its_holder() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p.lockfile");
    let guard = FileLock::new(&path).acquire(LONG).expect("acquire");
    let mode = fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    let mut content = String::new();
    fs::File::open(&path)
        .and_then(|mut f| f.read_to_string(&mut content))
        .expect("read");
    let exe = std::env::current_exe().expect("exe");
    assert_eq!(content, format!("{} {}", std::process::id(), exe.display()));
    drop(guard);
    assert!(matches!(
        FileLock::new(&path).inspect().expect("inspect"),
        LockState::Free
    ));
}

#[test]
fn a_waiter_gets_the_lock_within_milliseconds_of_its_release() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("w.lockfile");
    let mut holder = Worker::hold(&path, Some(Duration::from_millis(300)));
    let guard = FileLock::new(&path).acquire(LONG).expect("acquire");
    let got = SystemTime::now();
    let released = holder.released_at();
    let latency = got.duration_since(released).expect("after the release");
    assert!(latency < Duration::from_millis(20), "{latency:?}");
    drop(guard);
    holder.kill();
}

/// The blocked OS-lock requests of process `pid` on the file with inode `ino`, as the
/// kernel lists them in `/proc/locks` (`N: -> FLOCK  ADVISORY  READ  <pid> <maj>:<min>:<ino> ...`).
#[cfg(target_os = "linux")]
fn blocked_requests(pid: u32, ino: u64) -> usize {
    fs::read_to_string("/proc/locks")
        .expect("read /proc/locks")
        .lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&"->")
                && fields.get(2) == Some(&"FLOCK")
                && fields.get(5) == Some(&pid.to_string().as_str())
                && fields
                    .get(6)
                    .is_some_and(|id| id.rsplit(':').next() == Some(&ino.to_string()))
        })
        .count()
}

/// Waits until process `pid` sleeps in a request for the OS lock of inode `ino`; fails,
/// naming `what` that lock is, when it never does.
#[cfg(target_os = "linux")]
fn wait_until_blocked(pid: u32, ino: u64, what: &str) {
    let until = Instant::now() + LONG;
    while blocked_requests(pid, ino) == 0 {
        assert!(Instant::now() < until, "the waiter never waited in {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waiters wake at the release, not on a timer: while a holder of ours holds the lock, the
/// waiter whose turn it is sleeps in a request for the lock file's OS lock, which the
/// kernel grants at the release (a polling waiter never has such a request). Checked by
/// what the kernel shows, not by timing.
#[cfg(target_os = "linux")]
#[test]
fn the_first_waiter_sleeps_in_the_os_lock_of_the_holders_file() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.lockfile");
    let guard = FileLock::new(&path).acquire(LONG).expect("acquire");
    let ino = fs::metadata(&path).expect("the lock file").ino();
    let mut waiter = Worker::waiter(&path, Duration::from_millis(10));
    wait_until_blocked(waiter.pid(), ino, "the OS lock of the lock file");
    // And it stays asleep there, waking only to look at the path every 10 ms: a waiter
    // that came back from the request at once would spin, a whole core while it waits.
    let before = cpu_time(waiter.pid());
    std::thread::sleep(Duration::from_millis(500));
    let spent = cpu_time(waiter.pid()).saturating_sub(before);
    assert!(
        spent < Duration::from_millis(100),
        "the waiter spent {spent:?} of CPU in 500 ms of waiting"
    );
    drop(guard);
    waiter.expect_line("acquired");
    waiter.expect_line("released");
}

/// The CPU time (user + system) that process `pid` has spent, from `/proc/<pid>/stat`.
#[cfg(target_os = "linux")]
fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/<pid>/stat");
    // The fields after the command name, which is in parentheses and may hold spaces:
    // state is field 3, utime and stime fields 14 and 15, in clock ticks.
    let after_name = &stat[stat.rfind(')').expect("the command name") + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11..13]
        .iter()
        .map(|n| n.parse::<u64>().expect("ticks"))
        .sum();
    // SAFETY: sysconf reads a constant of the system.
    let per_second =
        u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).expect("ticks per second");
    Duration::from_millis(ticks * 1000 / per_second)
}

/// A waiter behind another in line sleeps too, in a request for the OS lock of the ticket
/// of the waiter just ahead of it, which that waiter holds until it leaves the line; a
/// polling waiter has no such request. Checked by what the kernel shows.
#[cfg(target_os = "linux")]
#[test]
fn a_waiter_behind_another_sleeps_in_the_os_lock_of_its_ticket() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.lockfile");
    let guard = FileLock::new(&path).acquire(LONG).expect("acquire");
    let mut first = Worker::waiter(&path, Duration::from_millis(10));
    wait_in_line(&path, first.pid());
    let ticket = fs::read_dir(dir.path().join("t.lockfile.queue"))
        .expect("the line")
        .filter_map(Result::ok)
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with(&format!("-{}", first.pid()))
        })
        .expect("the first waiter's ticket");
    let ino = ticket.metadata().expect("its ticket").ino();
    let mut second = Worker::waiter(&path, Duration::from_millis(10));
    wait_until_blocked(
        second.pid(),
        ino,
        "the OS lock of the first waiter's ticket",
    );
    drop(guard);
    for waiter in [&mut first, &mut second] {
        waiter.expect_line("acquired");
        waiter.expect_line("released");
    }
}

/// The release of a hold that continued a run keeps the OS lock of the lock file (now
/// unlinked) until the run ends, so that a waiter asleep on it is not woken by every
/// release of the run; the first hold's release drops it at once, so a process that takes
/// the lock once never makes a waiter wait for that end. Checked through a second open
/// file of the lock file, as a waiter's request sees it.
#[test]
fn releases_inside_a_run_keep_the_os_lock_until_the_run_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.lockfile");
    let lock = FileLock::new(&path);
    let first = hold_seen(&lock).expect("a hold, and its lock file opened");
    assert!(first.try_lock().is_ok(), "the first hold's release kept it");
    first.unlock().expect("unlock");
    let kept = kept_in_a_run(&lock).expect("no release inside a run kept the OS lock");
    // Dropped when the run ends, a few milliseconds later, without another acquire.
    assert!(dropped_in_time(&kept), "the kept OS lock was never dropped");
}

/// Two holds back to back through `lock`, a few times over, until the release of the
/// second keeps its OS lock; returns the lock file, opened before that release, through
/// which a waiter's request would see the kept lock. The second hold continues the run
/// unless the machine stalled for the whole slice between the two: the tries make that
/// a non-issue. `None` when no release kept it (or an acquire failed).
fn kept_in_a_run(lock: &FileLock) -> Option<fs::File> {
    (0..5).find_map(|_| {
        drop(lock.acquire(LONG).ok()?);
        let file = hold_seen(lock)?;
        file.try_lock().is_err().then_some(file)
    })
}

/// One hold through `lock`, with the lock file opened before its release: the open file
/// afterwards sees whatever OS lock the release left, as a waiter's request does. `None`
/// when the acquire or the open fails.
fn hold_seen(lock: &FileLock) -> Option<fs::File> {
    let guard = lock.acquire(LONG).ok()?;
    let file = fs::File::open(lock.path()).ok()?;
    drop(guard);
    Some(file)
}

/// Whether the OS lock that `file` sees held is dropped within [`LONG`].
fn dropped_in_time(file: &fs::File) -> bool {
    let until = Instant::now() + LONG;
    while file.try_lock().is_err() {
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// A waiter whose deadline passes while it sleeps in the holder's OS lock returns in time,
/// and what it leaves waiting (a helper thread, see `lock/watch.rs`) keeps no lock once
/// the holder is gone: the next holder, in another process, gets the lock, and this
/// process gets it back after that.
#[test]
fn a_waiter_that_times_out_in_the_os_lock_keeps_no_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("k.lockfile");
    let mut holder = Worker::hold(&path, None);
    let lock = FileLock::new(&path);
    let started = Instant::now();
    let err = lock
        .acquire(Duration::from_millis(100))
        .expect_err("held by the worker");
    assert_eq!(err.kind(), ErrorKind::LockTimeout);
    assert!(started.elapsed() < LONG, "{:?}", started.elapsed());
    // The holder dies; our helper, woken, must drop what it was granted.
    holder.kill();
    let mut next = Worker::hold(&path, Some(Duration::from_millis(10)));
    next.expect_line("released");
    Box::new(lock.acquire(LONG).expect("free again"))
        .release()
        .expect("release");
    #[cfg(target_os = "linux")]
    {
        // Nothing of this process is left on the lock's files, held or waiting.
        let me = std::process::id().to_string();
        let locks = fs::read_to_string("/proc/locks").expect("read /proc/locks");
        let ours: Vec<&str> = locks
            .lines()
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let pid = if fields.get(1) == Some(&"->") {
                    fields.get(5)
                } else {
                    fields.get(4)
                };
                pid == Some(&me.as_str())
            })
            .collect();
        // The guard file stays open in `lock` but unlocked; other tests of this binary
        // may hold locks of their own files, so only a lock on a file of this test counts.
        let mine: Vec<u64> = fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .collect();
        let left: Vec<&&str> = ours
            .iter()
            .filter(|line| {
                mine.iter().any(|ino| {
                    line.split_whitespace()
                        .any(|f| f.ends_with(&format!(":{ino}")))
                })
            })
            .collect();
        assert!(left.is_empty(), "locks left: {left:?}");
    }
}

/// A line that cannot be joined (here a file where its directory goes) is no reason to
/// wait: the waiter competes for the lock file, as the other SDKs do, and gets it once the
/// holder releases, long before its own deadline.
#[test]
fn a_line_that_cannot_be_joined_does_not_keep_a_waiter_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("q.lockfile");
    fs::write(dir.path().join("q.lockfile.queue"), "not a directory").expect("write");
    let mut holder = Worker::hold(&path, Some(Duration::from_millis(200)));
    let guard = FileLock::new(&path)
        .acquire(Duration::from_secs(10))
        .expect("the lock, once the holder released it");
    holder.expect_line("released");
    Box::new(guard).release().expect("release");
}

/// A process killed while it had a lock value leaves its stock (the private file its
/// lock files are links of); the next release of a later process removes it, and leaves
/// the stocks of live processes alone.
#[test]
fn the_stock_of_a_dead_process_is_swept_by_the_next_release() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("o.lockfile");
    let dead = dir
        .path()
        .join(format!(".lockfile.{}-00000000000000aa.tmp", dead_pid()));
    fs::write(&dead, "4194300 /a/killed/program").expect("write");
    let mut holder = Worker::hold(&path, Some(Duration::from_millis(1)));
    holder.expect_line("released");
    let theirs: Vec<_> = fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(".lockfile.") && name.ends_with(".tmp"))
        .collect();
    assert!(!dead.exists(), "the dead process's stock is still there");
    // The worker may still run (it reports before it exits): its own stock is not touched
    // while it lives, and goes when its lock value is dropped.
    assert!(theirs.len() <= 1, "{theirs:?}");
    holder.kill();
}

#[test]
fn four_processes_lose_no_increment_and_none_starves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("i.lockfile");
    let counter = dir.path().join("counter");
    fs::write(&counter, "0").expect("write");
    let per = 300;
    let workers: Vec<Worker> = (0..4)
        .map(|_| Worker::counter(&path, &counter, per))
        .collect();
    let mut max_wait = Duration::ZERO;
    for worker in workers {
        max_wait = max_wait.max(worker.finish_max_wait());
    }
    let total: u64 = fs::read_to_string(&counter)
        .expect("read")
        .trim()
        .parse()
        .expect("number");
    assert_eq!(total, 4 * per as u64);
    // Starvation guard, far above the benchmark target of 50 ms, so a loaded CI machine
    // does not fail it; the benchmark measures the real figure.
    assert!(max_wait < Duration::from_secs(2), "{max_wait:?}");
    let _ = std::io::stderr().write_all(format!("max wait {max_wait:?}\n").as_bytes());
}

/// Our lock file appears with its holder's pid in it, never empty: an empty file counts as
/// stale only after the grace period, so a holder killed between creating the file and
/// writing its pid used to cost the next process those 2 s. A watcher reads the lock file
/// as fast as it can while another process takes and releases the lock 3,000 times.
#[test]
fn our_lock_file_is_never_seen_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("e.lockfile");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (path, stop) = (path.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let (mut reads, mut empty) = (0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut file) = fs::File::open(&path) {
                    let mut text = String::new();
                    if file.read_to_string(&mut text).is_ok() {
                        reads += 1;
                        empty += usize::from(text.is_empty());
                    }
                }
            }
            (reads, empty)
        })
    };
    let counter = dir.path().join("counter");
    fs::write(&counter, "0").expect("counter");
    Worker::counter(&path, &counter, 3000).finish_max_wait();
    stop.store(true, Ordering::Relaxed);
    let (reads, empty) = watcher.join().expect("watcher");
    assert!(reads > 100, "the watcher read the file only {reads} times");
    assert_eq!(
        empty, 0,
        "{empty} of {reads} reads found the lock file empty"
    );
}

/// A holder killed the moment its lock file appears, before it could have written its pid
/// into a file created empty, costs the next process no grace period: the file appears
/// with its pid (or not at all), so the pid decides at once. Each round a worker process
/// asks for the lock, is SIGKILLed as soon as the lock path exists, and we take the lock.
/// Also checks that what those kills leave (temporary files) is swept, not piled up.
/// Before the lock file appeared with its content, about every other round waited the
/// full grace.
#[test]
fn a_holder_killed_as_its_lock_file_appears_costs_the_next_no_grace() {
    const ROUNDS: usize = 200;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.lockfile");
    let mut left_empty = 0;
    for round in 0..ROUNDS {
        let mut worker = Worker::waiter(&path, LONG);
        let until = Instant::now() + LONG;
        while fs::symlink_metadata(&path).is_err() {
            assert!(
                Instant::now() < until,
                "round {round}: no lock file appeared"
            );
        }
        worker.sigkill(true);
        left_empty += usize::from(fs::metadata(&path).is_ok_and(|m| m.len() == 0));
        let started = Instant::now();
        let guard = FileLock::new(&path).acquire(LONG).expect("acquire");
        let waited = started.elapsed();
        drop(guard);
        assert!(
            waited < GRACE / 2,
            "round {round}: the next acquire waited {waited:?} (the grace is {GRACE:?}); \
             {left_empty} killed holders so far left an empty lock file"
        );
    }
    let _ = std::io::stderr().write_all(format!("left empty: {left_empty}\n").as_bytes());
    // Each round's acquire swept the temporary files the kill before it left (their
    // writer is dead); only the lock's guard file, never removed, stays.
    let left: Vec<_> = fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["c.lockfile.guard"], "left behind");
}

/// A forked child shares its parent's open files, and with them the OS locks those files
/// hold. Dropping the lock guard it inherited must leave the parent's lock as it is (lock
/// file, its OS lock, the guard), and an acquire in the child must not pass through the
/// parent's open guard file: when the lock file is deleted under its holder (as Python's
/// portalocker variant does), that guard is what keeps a second process of ours out.
/// The child reports by exit status, since it must not unwind into the test harness.
#[test]
fn a_forked_child_neither_releases_nor_shares_its_parents_lock() {
    Worker::forking("neither_releases_nor_shares");
}

fn forked_child_neither_releases_nor_shares() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.lockfile");
    let guard_path = dir.path().join("c.lockfile.guard");
    let lock = FileLock::new(&path);
    let mut held = Some(lock.acquire(LONG).expect("the parent takes the lock"));
    // Only the child's copy of `held` is taken: the parent's stays.
    let code = exit_code_of_forked(|| {
        drop(held.take());
        let guard_held = fs::File::open(&guard_path).is_ok_and(|f| f.try_lock().is_err());
        if fs::symlink_metadata(&path).is_err() {
            10 // the child's drop removed the parent's lock file
        } else if !guard_held {
            11 // the child's drop released the parent's guard
        } else {
            let _ = fs::remove_file(&path);
            match lock.acquire(Duration::ZERO) {
                Ok(_) => 12, // the child passed the parent's guard
                Err(_) => 0,
            }
        }
    });
    assert_eq!(
        code, 0,
        "10: the child's drop removed the lock file, 11: it released the guard, 12: the child took the lock through the parent's guard"
    );
    let held = held.expect("the parent's guard is still there");
    Box::new(held).release().expect("the parent releases");
}

/// A forked child that dies holding the lock frees it like any dead holder: the child
/// must lock a file of its own, not the parent's stock, whose OS lock belongs to an open
/// file the parent still has open and would outlive the child.
#[test]
fn a_forked_child_killed_holding_the_lock_frees_it() {
    Worker::forking("killed_holding");
}

fn forked_child_killed_holding() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.lockfile");
    let lock = FileLock::new(&path);
    // Makes the parent's stock, the file its lock files are links of.
    drop(
        lock.acquire(LONG)
            .expect("the parent takes and releases the lock"),
    );
    let code = exit_code_of_forked(|| match lock.acquire(LONG) {
        // Dies holding it: no release runs.
        Ok(held) => {
            std::mem::forget(held);
            0
        }
        Err(_) => 1,
    });
    assert_eq!(code, 0, "the child did not take the lock");
    // Through another `FileLock` first, which leaves the parent's stock open as it is: an
    // acquire of `lock` itself could replace that stock, closing it, and so free a lock
    // the child took through it.
    let again = FileLock::new(&path)
        .acquire(Duration::from_secs(2))
        .expect("the dead child's lock is free again");
    Box::new(again).release().expect("release");
    let again = lock
        .acquire(Duration::from_secs(2))
        .expect("the parent takes its lock again");
    Box::new(again).release().expect("release");
}

/// A forked child keeps its own OS lock through a run of holds, as any process does, and
/// drops it at the run's end with a timer thread of its own: the state it inherited names
/// its parent's timer thread, which the fork did not copy. Forked while that thread waits,
/// idle, for its parent's next run.
#[test]
fn a_forked_child_drops_the_lock_it_keeps_with_a_timer_of_its_own() {
    Worker::forking("keeps_in_a_run");
}

fn forked_child_keeps_in_a_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f.lockfile");
    let lock = FileLock::new(&path);
    let kept = kept_in_a_run(&lock).expect("the parent kept no OS lock in a run");
    assert!(
        dropped_in_time(&kept),
        "the parent's timer never dropped it"
    );
    // The parent's timer thread now waits for its next run, for a second.
    let code = exit_code_of_forked(|| match kept_in_a_run(&lock) {
        None => 1,
        Some(file) if !dropped_in_time(&file) => 2,
        Some(_) => 0,
    });
    assert_eq!(
        code, 0,
        "1: the child kept no OS lock in a run, 2: it never dropped the one it kept"
    );
}

/// The body of the forking test `name`, run in a worker process (`Worker::forking`).
///
/// A forked child has only the thread that forked: a lock that another thread held at that
/// moment stays locked in the child for good. Forked from the test harness, whose other
/// threads run other lock tests, a child once hung on this crate's registry of lock paths.
/// A worker runs nothing but the one test body, so no other thread holds anything.
fn run_forking(name: &str) {
    match name {
        "neither_releases_nor_shares" => forked_child_neither_releases_nor_shares(),
        "killed_holding" => forked_child_killed_holding(),
        "keeps_in_a_run" => forked_child_keeps_in_a_run(),
        other => panic!("no forking test called {other}"),
    }
}

/// Runs `child` in a forked child process and returns the code it exits with. Called only
/// in a worker (see [`run_forking`]). `child` may only make system calls and calls into
/// this crate: the child leaves with `_exit`, never returning into the test harness (nor
/// unwinding into it: a panic is exit code 101).
fn exit_code_of_forked(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: see above; the child runs nothing of the parent's but `child`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: ends the child at once, running nothing of the parent's.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid");
    assert!(libc::WIFEXITED(status), "the child did not exit: {status}");
    libc::WEXITSTATUS(status)
}

/// A guard file removed by hand while a `FileLock` keeps the old one open: the lock of that
/// unnamed file excludes nobody, so the next acquire must take the guard at the path, and
/// a worker of ours holding that one keeps us out, even with its lock file deleted under
/// it (as Python's portalocker variant does).
#[test]
fn a_guard_file_removed_by_hand_is_not_trusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("g.lockfile");
    let lock = FileLock::new(&path);
    // Opens the guard file, which the `FileLock` keeps open.
    drop(lock.acquire(LONG).expect("first acquire"));
    fs::remove_file(dir.path().join("g.lockfile.guard")).expect("remove the guard file");
    let mut holder = Worker::hold(&path, None);
    fs::remove_file(&path).expect("delete the holder's lock file under it");
    let err = lock
        .acquire(Duration::from_millis(200))
        .expect_err("the worker holds the guard at the path");
    assert_eq!(err.kind(), ErrorKind::LockTimeout);
    holder.kill();
}

#[test]
fn a_missing_directory_is_an_error_not_a_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let err = FileLock::new(dir.path().join("no/such/dir/x.lockfile"))
        .acquire(LONG)
        .expect_err("no directory");
    assert_ne!(err.kind(), ErrorKind::LockTimeout);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_directory_at_the_lock_path_is_an_error_not_a_wait() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("x.lockfile");
    fs::create_dir(&path).expect("mkdir");
    let err = FileLock::new(&path).acquire(LONG).expect_err("not a file");
    assert_ne!(err.kind(), ErrorKind::LockTimeout);
    assert!(Path::new(&path).is_dir());
}

#[path = "python/venv.rs"]
mod venv;

/// Interop with the lock files of Python `msal-extensions` (both variants) and MSAL Node
/// (emulated), with the real package from PyPI in a throwaway virtual environment.
mod python_interop {
    use std::{
        fs,
        io::{BufRead, BufReader},
        path::{Path, PathBuf},
        process::{Child, Command, Stdio},
        sync::mpsc::{Receiver, channel},
        time::{Duration, Instant, SystemTime},
    };

    use identity_cache_persistence::{HeldLock, lock::FileLock};

    const LONG: Duration = Duration::from_secs(20);

    use super::venv::python;

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/msal_lock.py")
    }

    /// A running `msal_lock.py` and its `EVENT NANOS` lines.
    struct Py {
        child: Child,
        lines: Receiver<String>,
    }

    impl Py {
        fn start(python: &Path, args: &[&str]) -> Py {
            let mut child = Command::new(python)
                .arg(script())
                .args(args)
                .stdout(Stdio::piped())
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn python");
            let stdout = child.stdout.take().expect("piped");
            let (send, lines) = channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
            Py { child, lines }
        }

        fn hold(python: &Path, variant: &str, lock: &Path, seconds: f64) -> Py {
            Py::start(
                python,
                &[
                    "hold",
                    variant,
                    &lock.display().to_string(),
                    &seconds.to_string(),
                ],
            )
        }

        /// Waits for `event` and returns when Python saw it.
        fn event(&mut self, event: &str) -> SystemTime {
            loop {
                let line = self
                    .lines
                    .recv_timeout(LONG)
                    .unwrap_or_else(|e| panic!("python sent no {event:?}: {e}"));
                if let Some(nanos) = line.strip_prefix(&format!("{event} ")) {
                    let nanos: u64 = nanos.parse().expect("nanos");
                    return SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos);
                }
            }
        }

        fn finish(mut self) {
            let status = self.child.wait().expect("wait");
            assert!(status.success(), "python failed: {status:?}");
        }
    }

    impl Drop for Py {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Python (or the MSAL Node emulation) holds: our acquire waits until it released.
    fn they_hold_we_wait(variant: &str) {
        let Some(python) = python() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("msal.cache.lockfile");
        let mut py = Py::hold(python, variant, &lock, 1.0);
        py.event("acquired");
        let guard = FileLock::new(&lock).acquire(LONG).expect("acquire");
        let got = SystemTime::now();
        let releasing = py.event("releasing");
        assert!(
            got >= releasing,
            "{variant}: we got the lock while it held it"
        );
        let late = got.duration_since(releasing).expect("after");
        assert!(late < Duration::from_millis(500), "{variant}: {late:?}");
        Box::new(guard).release().expect("release");
        py.finish();
    }

    /// We hold: Python (or the MSAL Node emulation) waits until we released.
    fn we_hold_they_wait(variant: &str) {
        let Some(python) = python() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("msal.cache.lockfile");
        let guard = FileLock::new(&lock).acquire(LONG).expect("acquire");
        let mut py = Py::hold(python, variant, &lock, 0.1);
        py.event("waiting");
        // Held for well under the 5 s after which the portalocker variant goes ahead.
        std::thread::sleep(Duration::from_millis(1200));
        let releasing = SystemTime::now();
        Box::new(guard).release().expect("release");
        let acquired = py.event("acquired");
        assert!(
            acquired >= releasing,
            "{variant} got the lock while we held it"
        );
        // They poll every 0.25 s (Python) or 50 ms (Node).
        let late = acquired.duration_since(releasing).expect("after");
        assert!(late < Duration::from_millis(1000), "{variant}: {late:?}");
        py.finish();
        assert!(!lock.exists(), "{variant} removed its lock file");
    }

    #[test]
    fn python_portalocker_holder_excludes_us() {
        they_hold_we_wait("portalocker");
    }

    #[test]
    fn python_filelock_holder_excludes_us() {
        they_hold_we_wait("filelock");
    }

    #[test]
    fn msal_node_holder_excludes_us() {
        they_hold_we_wait("node");
    }

    #[test]
    fn we_exclude_python_portalocker() {
        we_hold_they_wait("portalocker");
    }

    #[test]
    fn we_exclude_python_filelock() {
        we_hold_they_wait("filelock");
    }

    #[test]
    fn we_exclude_msal_node() {
        we_hold_they_wait("node");
    }

    #[test]
    fn a_killed_python_filelock_holder_is_recovered() {
        let Some(python) = python() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("msal.cache.lockfile");
        let mut py = Py::hold(python, "filelock", &lock, 60.0);
        py.event("acquired");
        py.child.kill().expect("SIGKILL");
        py.child.wait().expect("reap");
        assert!(lock.exists(), "python left its lock file behind");
        let started = Instant::now();
        FileLock::new(&lock).acquire(LONG).expect("recovered");
        assert!(started.elapsed() < Duration::from_millis(200));
    }

    /// Python's portalocker variant gives up on creating the lock file after 5 s, waits
    /// for the OS lock of whatever file it opened (possibly one already unlinked) and on
    /// release deletes whatever file the path names then, possibly one of ours that holds
    /// it. We cannot stop that fall-through, but it must never let two of *our* processes
    /// in at once: three of ours keep the lock busy with short holds for 14 s while
    /// Python, waiting, falls through twice.
    #[test]
    fn a_python_portalocker_fall_through_never_lets_two_of_ours_in() {
        let Some(python) = python() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("msal.cache.lockfile");
        let ours_log = dir.path().join("ours.log");
        let python_log = dir.path().join("python.log");
        let ours: Vec<super::support::Worker> = (0..3)
            .map(|_| super::support::Worker::busy(&lock, &ours_log, 14.0))
            .collect();
        let mut py = Py::start(
            python,
            &[
                "nest",
                "portalocker",
                &lock.display().to_string(),
                &python_log.display().to_string(),
                "2",
            ],
        );
        py.event("finished");
        py.finish();
        for worker in ours {
            worker.finish_nester();
        }
        let text = fs::read_to_string(&ours_log).expect("log");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 200, "too few holds: {}", lines.len());
        for (i, pair) in lines.chunks(2).enumerate() {
            assert!(
                pair.len() == 2
                    && pair[0].starts_with("< ")
                    && pair[1] == format!("> {}", &pair[0][2..]),
                "two of ours held the lock at once, at hold {i}: {pair:?}"
            );
        }
    }

    /// Both Python variants, the MSAL Node emulation and two of our processes take turns
    /// on one lock file; each writes `< pid` and `> pid` while it holds the lock. The log
    /// must be perfectly nested: nobody entered while another was inside.
    #[test]
    fn every_sdk_and_ours_take_turns_without_overlap() {
        let Some(python) = python() else { return };
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = dir.path().join("msal.cache.lockfile");
        let log = dir.path().join("log");
        let (lock_arg, log_arg) = (lock.display().to_string(), log.display().to_string());
        let pythons: Vec<Py> = ["portalocker", "filelock", "node"]
            .into_iter()
            .map(|variant| Py::start(python, &["nest", variant, &lock_arg, &log_arg, "6"]))
            .collect();
        let ours: Vec<super::support::Worker> = (0..2)
            .map(|_| super::support::Worker::nester(&lock, &log, 25))
            .collect();
        for mut py in pythons {
            py.event("finished");
            py.finish();
        }
        for worker in ours {
            worker.finish_nester();
        }
        let text = fs::read_to_string(&log).expect("log");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 * (3 * 6 + 2 * 25), "{text}");
        for pair in lines.chunks(2) {
            let (enter, leave) = (pair[0], pair[1]);
            assert!(
                enter.starts_with("< ") && leave == format!("> {}", &enter[2..]),
                "overlap: {pair:?} in\n{text}"
            );
        }
    }
}

/// Worker processes and file helpers.
mod support {
    use std::{
        fs,
        io::{BufRead, BufReader},
        path::Path,
        process::{Child, Command, Stdio},
        sync::mpsc::{Receiver, RecvTimeoutError, channel},
        time::{Duration, Instant, SystemTime},
    };

    use identity_cache_persistence::{HeldLock, lock::FileLock};

    const ROLE: &str = "LOCK_TEST_WORKER";
    const ARGS: &str = "LOCK_TEST_ARGS";
    const REPLY: Duration = Duration::from_secs(30);

    /// A worker process and the `@@` lines it printed.
    pub struct Worker {
        child: Child,
        lines: Receiver<String>,
        seen: Vec<String>,
    }

    impl Worker {
        fn spawn(role: &str, args: &[String]) -> Worker {
            let exe = std::env::current_exe().expect("test binary");
            let mut child = Command::new(exe)
                .args(["--exact", "worker", "--nocapture", "--test-threads", "1"])
                .env(ROLE, role)
                .env(ARGS, args.join("\n"))
                .stdout(Stdio::piped())
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn worker");
            let stdout = child.stdout.take().expect("piped");
            let (send, lines) = channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // libtest may print `test worker ... ` before the first report.
                    if let Some(at) = line.find("@@ ")
                        && send.send(line[at + 3..].to_owned()).is_err()
                    {
                        break;
                    }
                }
            });
            Worker {
                child,
                lines,
                seen: Vec::new(),
            }
        }

        /// A worker that takes the lock, reports `acquired`, and holds it for `hold`
        /// (forever with `None`). Returns once it holds the lock.
        pub fn hold(path: &Path, hold: Option<Duration>) -> Worker {
            let ms = hold.map_or(0, |d| d.as_millis().max(1));
            let mut worker = Worker::spawn("hold", &[path.display().to_string(), ms.to_string()]);
            worker.expect_line("acquired");
            worker
        }

        /// A worker that takes the lock and holds it for `hold`, reporting `acquired` and
        /// `released`. Returns at once, before it asks for the lock.
        pub fn waiter(path: &Path, hold: Duration) -> Worker {
            let ms = hold.as_millis().max(1);
            Worker::spawn("hold", &[path.display().to_string(), ms.to_string()])
        }

        /// A worker that, for each round, waits for `<round>.go` and then takes and
        /// briefly holds `<round>.lockfile`, logging the interval.
        pub fn racer(dir: &Path, rounds: usize) -> Worker {
            Worker::spawn("race", &[dir.display().to_string(), rounds.to_string()])
        }

        /// A worker doing `n` read-modify-write increments of `counter` under the lock.
        pub fn counter(lock: &Path, counter: &Path, n: usize) -> Worker {
            Worker::spawn(
                "count",
                &[
                    lock.display().to_string(),
                    counter.display().to_string(),
                    n.to_string(),
                ],
            )
        }

        /// A worker taking the lock `n` times, logging `< pid` / `> pid` inside.
        pub fn nester(lock: &Path, log: &Path, n: usize) -> Worker {
            Worker::spawn(
                "nest",
                &[
                    lock.display().to_string(),
                    log.display().to_string(),
                    n.to_string(),
                ],
            )
        }

        /// A worker taking the lock for holds of 0-20 ms with 1 ms gaps for `secs` seconds,
        /// logging `< pid` / `> pid` inside.
        pub fn busy(lock: &Path, log: &Path, secs: f64) -> Worker {
            Worker::spawn(
                "busy",
                &[
                    lock.display().to_string(),
                    log.display().to_string(),
                    secs.to_string(),
                ],
            )
        }

        /// Runs the forking test body `name` (see `run_forking`) in a worker and waits
        /// for it to pass; its panic, if any, shows on the worker's stderr.
        pub fn forking(name: &str) {
            Worker::spawn("fork", &[name.to_owned()]).finish("passed");
        }

        /// Waits for a `nest` worker to finish successfully.
        pub fn finish_nester(self) {
            self.finish("finished");
        }

        pub fn pid(&self) -> u32 {
            self.child.id()
        }

        /// Waits for the report `want`, keeping the reports before it.
        pub fn expect_line(&mut self, want: &str) -> String {
            let until = Instant::now() + REPLY;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(line) => {
                        let found = line == want || line.starts_with(&format!("{want} "));
                        self.seen.push(line.clone());
                        if found {
                            return line;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        panic!("worker sent no {want:?} in {REPLY:?}; saw {:?}", self.seen)
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        let status = self.child.wait();
                        panic!(
                            "worker ended ({status:?}) before {want:?}; saw {:?}",
                            self.seen
                        )
                    }
                }
            }
        }

        /// When a `hold` worker with a duration started releasing.
        pub fn released_at(&mut self) -> SystemTime {
            let line = self.expect_line("releasing");
            let nanos: u64 = line["releasing ".len()..].parse().expect("nanos");
            SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
        }

        /// SIGKILLs the worker; `reap` waits for it, otherwise it stays a zombie.
        pub fn sigkill(&mut self, reap: bool) {
            self.child.kill().expect("SIGKILL");
            if reap {
                self.child.wait().expect("reap");
            }
        }

        pub fn kill(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }

        fn finish(mut self, last: &str) -> Vec<String> {
            self.expect_line(last);
            let status = self.child.wait().expect("wait");
            assert!(status.success(), "worker failed: {status:?}");
            std::mem::take(&mut self.seen)
        }

        /// The (start, end) hold intervals in ns of a `race` worker, after it finished.
        pub fn finish_holds(self) -> Vec<(u128, u128)> {
            self.finish("finished")
                .iter()
                .filter_map(|line| line.strip_prefix("hold "))
                .map(|rest| {
                    let (a, b) = rest.split_once(' ').expect("two numbers");
                    (a.parse().expect("ns"), b.parse().expect("ns"))
                })
                .collect()
        }

        /// The longest acquire of a `count` worker, after it finished.
        pub fn finish_max_wait(self) -> Duration {
            let seen = self.finish("finished");
            let nanos = seen
                .iter()
                .find_map(|line| line.strip_prefix("maxwait "))
                .expect("maxwait reported");
            Duration::from_nanos(nanos.parse().expect("ns"))
        }
    }

    impl Drop for Worker {
        fn drop(&mut self) {
            self.kill();
        }
    }

    /// A pid that no process has now: that of a child that has exited and been reaped.
    pub fn dead_pid() -> u32 {
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("reap");
        pid
    }

    /// Sets the modification time of `path` to `age` ago.
    pub fn set_age(path: &Path, age: Duration) {
        fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(SystemTime::now() - age))
            .expect("set mtime");
    }

    fn now_ns() -> u128 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos()
    }

    fn report(line: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "@@ {line}");
        let _ = out.flush();
    }

    /// Plays the role in `LOCK_TEST_WORKER`, if any.
    /// Appends `line` to `log` in one write (`O_APPEND`), as the workers log their holds.
    fn append_line(log: &Path, line: &str) {
        use std::io::Write;
        fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .expect("append");
    }

    pub fn run_worker_if_asked() {
        let Ok(role) = std::env::var(ROLE) else {
            return;
        };
        let args: Vec<String> = std::env::var(ARGS)
            .unwrap_or_default()
            .split('\n')
            .map(str::to_owned)
            .collect();
        let long = Duration::from_secs(20);
        match role.as_str() {
            "hold" => {
                let guard = FileLock::new(&args[0]).acquire(long).expect("acquire");
                report("acquired");
                let ms: u64 = args[1].parse().expect("ms");
                if ms == 0 {
                    loop {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
                std::thread::sleep(Duration::from_millis(ms));
                report(&format!("releasing {}", now_ns()));
                Box::new(guard).release().expect("release");
                report("released");
            }
            "race" => {
                let dir = Path::new(&args[0]);
                let rounds: usize = args[1].parse().expect("rounds");
                for round in 0..rounds {
                    let go = dir.join(format!("{round}.go"));
                    while !go.exists() {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    report(&format!("waiting {round}"));
                    let lock = FileLock::new(dir.join(format!("{round}.lockfile")));
                    let guard = lock.acquire(long).expect("acquire");
                    let start = now_ns();
                    std::thread::sleep(Duration::from_millis(2));
                    let end = now_ns();
                    Box::new(guard).release().expect("release");
                    report(&format!("hold {start} {end}"));
                    report(&format!("done {round}"));
                }
                report("finished");
            }
            "count" => {
                let lock = FileLock::new(&args[0]);
                let counter = Path::new(&args[1]);
                let n: usize = args[2].parse().expect("n");
                let mut max_wait = Duration::ZERO;
                for _ in 0..n {
                    let started = Instant::now();
                    let guard = lock.acquire(long).expect("acquire");
                    max_wait = max_wait.max(started.elapsed());
                    let value: u64 = fs::read_to_string(counter)
                        .expect("read")
                        .trim()
                        .parse()
                        .expect("number");
                    fs::write(counter, (value + 1).to_string()).expect("write");
                    Box::new(guard).release().expect("release");
                }
                report(&format!("maxwait {}", max_wait.as_nanos()));
                report("finished");
            }
            "nest" => {
                let lock = FileLock::new(&args[0]);
                let log = Path::new(&args[1]);
                let n: usize = args[2].parse().expect("n");
                let pid = std::process::id();
                let append = |line: String| append_line(log, &line);
                for _ in 0..n {
                    let guard = lock.acquire(long).expect("acquire");
                    append(format!("< {pid}\n"));
                    std::thread::sleep(Duration::from_millis(2));
                    append(format!("> {pid}\n"));
                    Box::new(guard).release().expect("release");
                    // Python polls every 0.25 s; leave it gaps to get in.
                    std::thread::sleep(Duration::from_millis(15));
                }
                report("finished");
            }
            "busy" => {
                // Holds of 0-20 ms with 1 ms gaps for `args[2]` seconds: with a few of
                // these, the lock is never free for long.
                let lock = FileLock::new(&args[0]);
                let log = Path::new(&args[1]);
                let until =
                    Instant::now() + Duration::from_secs_f64(args[2].parse().expect("secs"));
                let pid = std::process::id();
                let append = |line: String| append_line(log, &line);
                while Instant::now() < until {
                    let guard = lock.acquire(long).expect("acquire");
                    append(format!("< {pid}\n"));
                    std::thread::sleep(Duration::from_millis(fastrand::u64(0..=20)));
                    append(format!("> {pid}\n"));
                    Box::new(guard).release().expect("release");
                    std::thread::sleep(Duration::from_millis(1));
                }
                report("finished");
            }
            "fork" => {
                super::run_forking(&args[0]);
                report("passed");
            }
            other => panic!("unknown worker role {other}"),
        }
    }
}
