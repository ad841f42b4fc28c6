//! `RedisPersistence` under real faults of a real `redis-server` (started by the test on
//! 127.0.0.1, `tests/redis_support`): the server killed and restarted in the middle of a
//! run, connections cut with `CLIENT KILL`, a lock holder process killed (SIGKILL) or
//! frozen (SIGSTOP) past the lock's TTL, and a server out of memory (`maxmemory` with
//! `noeviction`).
//!
//! The second lock holder is this binary again (`REDIS_FAULTS_HOLDER` set): it takes the
//! lock, says `held` on stdout, and releases when told `release` on stdin, answering
//! `released ok` or `released <error kind>`.
//!
//! Without `redis-server` every test is skipped with the reason; with `CI` set, it fails.

#[path = "redis_support/mod.rs"]
mod redis_support;

use std::{
    error::Error as _,
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use identity_cache_persistence::{CachePersistence, ErrorKind, RedisPersistence};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use redis_support::{MISSING, RedisServer, available_or_skip};

const HOLDER_ENV: &str = "REDIS_FAULTS_HOLDER";
const NAME_ENV: &str = "REDIS_FAULTS_NAME";
const TTL_ENV: &str = "REDIS_FAULTS_TTL_MS";

type Test = fn() -> Result<(), Failed>;

/// The lock TTL of the lock tests: short, so that they wait for expiry quickly.
const TTL: Duration = Duration::from_millis(1000);

fn main() {
    if let Ok(url) = std::env::var(HOLDER_ENV) {
        holder(&url);
        return;
    }
    let args = Arguments::from_args();
    let tests: Vec<(&str, Test)> = vec![
        (
            "restart_keeps_acknowledged_saves",
            restart_keeps_acknowledged_saves,
        ),
        ("cut_connection_reconnects", cut_connection_reconnects),
        (
            "killed_holder_lock_expires_after_ttl",
            killed_holder_lock_expires_after_ttl,
        ),
        #[cfg(unix)]
        (
            "expired_guard_leaves_new_holders_lock",
            expired_guard_leaves_new_holders_lock,
        ),
        ("full_server_is_storage_full", full_server_is_storage_full),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            Trial::ignorable_test(name, move || {
                if !available_or_skip(name) {
                    return Ok(Completion::ignored_with(MISSING));
                }
                test().map(|()| Completion::Completed)
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// The second process: holds the lock until told to release it or killed.
fn holder(url: &str) {
    let name = std::env::var(NAME_ENV).expect("cache name");
    let ttl = std::env::var(TTL_ENV)
        .ok()
        .and_then(|t| t.parse().ok())
        .map_or(TTL, Duration::from_millis);
    let p = RedisPersistence::new(url, &name)
        .expect("persistence")
        .with_lock_ttl(ttl);
    let guard = p.lock(Duration::from_secs(10)).expect("lock");
    println!("held");
    std::io::stdout().flush().expect("flush");
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
        if line.trim() == "release" {
            match guard.release() {
                Ok(()) => println!("released ok"),
                Err(e) => println!("released {}", e.kind()),
            }
            std::io::stdout().flush().expect("flush");
            return;
        }
        line.clear();
    }
}

/// A holder process, killed on drop.
struct Holder {
    child: Child,
    /// Held open on every OS: the holder releases its lock when its stdin closes. Only
    /// the Unix-only SIGSTOP test writes to it (`release`).
    #[cfg_attr(
        not(unix),
        expect(dead_code, reason = "held open, written only on Unix")
    )]
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    fn start(server: &RedisServer, name: &str) -> Holder {
        let mut child = Command::new(std::env::current_exe().expect("own executable"))
            .env(HOLDER_ENV, server.url())
            .env(NAME_ENV, name)
            .env(TTL_ENV, TTL.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the holder process");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut holder = Holder {
            child,
            stdin,
            stdout,
        };
        assert_eq!(holder.line(), "held");
        holder
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from holder");
        line.trim().to_owned()
    }

    /// SIGSTOP and SIGCONT: Windows has no way to freeze a process from outside, so the
    /// test that needs it is Unix-only.
    #[cfg(unix)]
    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid; it has not been reaped, so the pid is
        // still that child's.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({signal})");
    }

    #[cfg(unix)]
    fn release(&mut self) -> String {
        writeln!(self.stdin, "release").expect("tell the holder");
        self.stdin.flush().expect("flush");
        self.line()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn check(ok: bool, what: impl Into<String>) -> Result<(), Failed> {
    if ok { Ok(()) } else { Err(what.into().into()) }
}

/// A blob that says which save it was, with a marker that must never show in errors.
fn blob(i: usize, len: usize) -> Vec<u8> {
    let mut data = format!("save {i} SECRET-REFRESH-TOKEN ").into_bytes();
    data.resize(len, b'0' + (i % 10) as u8);
    data
}

fn check_error(e: &identity_cache_persistence::Error, kind: ErrorKind) -> Result<(), Failed> {
    check(e.kind() == kind, format!("expected {kind}, got {e:?}"))?;
    check(e.source().is_some(), format!("no source in {e:?}"))?;
    let shown = format!("{e} {e:?}");
    check(
        !shown.contains("SECRET-REFRESH-TOKEN"),
        "the error shows the blob",
    )
}

/// Saves go on while the server is killed (SIGKILL) and restarted with its append-only
/// file: the calls in between fail with `StorageUnavailable`, the next ones reconnect,
/// and the last acknowledged save is what loads afterwards.
fn restart_keeps_acknowledged_saves() -> Result<(), Failed> {
    let mut server = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let p = RedisPersistence::new(&server.url(), "restart")?;
    let mut acknowledged = None;
    let mut failed = Vec::new();
    let mut version_before = None;
    for i in 0..40 {
        if i == 20 {
            version_before = p.version()?;
            server.restart();
        }
        match p.save(&blob(i, 10 * 1024)) {
            Ok(()) => acknowledged = Some(i),
            Err(e) => {
                check_error(&e, ErrorKind::StorageUnavailable)?;
                failed.push(i);
            }
        }
    }
    // Only the call that found the connection dead fails; the next one reconnects.
    check(
        failed.len() <= 1 && failed.iter().all(|&i| i == 20),
        format!("saves failed after the restart: {failed:?}"),
    )?;
    check(acknowledged == Some(39), "the saves after the restart work")?;
    let loaded = p.load()?;
    check(
        loaded.as_deref() == Some(&blob(39, 10 * 1024)[..]),
        "the last acknowledged save loads",
    )?;
    // The counter survived the restart: the version moved on, it did not start over.
    check(
        p.version()? != version_before,
        "the version moves after the restart",
    )?;

    // Killed and restarted once more with nothing saved in between: nothing is lost.
    server.restart();
    let err = p
        .load()
        .expect_err("the first load after a restart finds the connection dead");
    check_error(&err, ErrorKind::StorageUnavailable)?;
    check(
        p.load()?.as_deref() == Some(&blob(39, 10 * 1024)[..]),
        "the blob is there after the second restart",
    )
}

/// `CLIENT KILL` of every connection of this process: the next call fails with
/// `StorageUnavailable`, the one after reconnects; a held lock stays held (its watchdog
/// reconnects too) and excludes another handle all along.
fn cut_connection_reconnects() -> Result<(), Failed> {
    let server = RedisServer::start(&[]);
    let mut admin = server.admin();
    let p = RedisPersistence::new(&server.url(), "cut")?.with_lock_ttl(TTL);
    p.save(b"before the cut")?;
    let guard = p.lock(Duration::ZERO)?;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg("default")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut admin)?;
    check(killed >= 2, format!("{killed} connections killed"))?;
    let err = p
        .load()
        .expect_err("the cut connection fails the next call");
    check_error(&err, ErrorKind::StorageUnavailable)?;
    check(
        p.load()?.as_deref() == Some(&b"before the cut"[..]),
        "the call after reconnects",
    )?;
    // Three TTLs after the cut, the lock is still ours.
    let other = RedisPersistence::new(&server.url(), "cut")?;
    let err = other
        .lock(3 * TTL)
        .expect_err("the lock is held while its holder lives");
    check(err.kind() == ErrorKind::LockTimeout, format!("{err:?}"))?;
    guard.release()?;
    drop(other.lock(Duration::ZERO)?);
    Ok(())
}

/// A holder process killed with SIGKILL: its lock is free within one TTL, and not while
/// the holder lived, even after its connections were cut.
fn killed_holder_lock_expires_after_ttl() -> Result<(), Failed> {
    let server = RedisServer::start(&[]);
    let mut admin = server.admin();
    let mut holder = Holder::start(&server, "killed");
    let p = RedisPersistence::new(&server.url(), "killed")?;
    // Cut the holder's connections: it is alive, so it keeps the lock.
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin)?;
    let tag = format!("name=identity-cache:{} ", holder.child.id());
    let mut cut = 0;
    for line in list.lines().filter(|l| l.contains(&tag)) {
        let id = line
            .split(' ')
            .find_map(|f| f.strip_prefix("id="))
            .expect("id in CLIENT LIST");
        let _: redis::Value = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query(&mut admin)?;
        cut += 1;
    }
    check(cut >= 1, "the holder's connection was found and cut")?;
    let err = p
        .lock(3 * TTL)
        .expect_err("a live holder keeps the lock after its connection was cut");
    check(err.kind() == ErrorKind::LockTimeout, format!("{err:?}"))?;
    check(
        err.to_string().contains(p.lock_key()),
        format!("the timeout names the lock key: {err}"),
    )?;

    holder.child.kill().expect("kill the holder"); // SIGKILL on Unix
    let killed = Instant::now();
    let guard = p.lock(10 * TTL)?;
    let took = killed.elapsed();
    check(
        took <= TTL + Duration::from_secs(1),
        format!("the lock was free {took:?} after its holder's death (TTL {TTL:?})"),
    )?;
    guard.release()?;
    Ok(())
}

/// A holder frozen (SIGSTOP) past the TTL loses the lock to another process; once it
/// runs again, releasing its expired guard reports that and leaves the new holder's
/// lock in place.
#[cfg(unix)]
fn expired_guard_leaves_new_holders_lock() -> Result<(), Failed> {
    let server = RedisServer::start(&[]);
    let mut holder = Holder::start(&server, "frozen");
    let p = RedisPersistence::new(&server.url(), "frozen")?;
    holder.signal(libc::SIGSTOP);
    let guard = p.lock(5 * TTL)?;
    holder.signal(libc::SIGCONT);
    // The holder's watchdog wakes, finds another token and stops; its release fails.
    std::thread::sleep(TTL / 2);
    let answer = holder.release();
    check(
        answer == "released other",
        format!("the expired guard's release answered {answer:?}"),
    )?;
    let third = RedisPersistence::new(&server.url(), "frozen")?;
    let err = third
        .lock(Duration::ZERO)
        .expect_err("the new holder still holds the lock");
    check(err.kind() == ErrorKind::LockTimeout, format!("{err:?}"))?;
    guard.release()?;
    drop(third.lock(Duration::ZERO)?);
    Ok(())
}

/// A server out of memory with `noeviction`: saves fail with `StorageFull`, the blob
/// stored before is there whole with its version, deletes still work, and once memory
/// is freed saves work again.
fn full_server_is_storage_full() -> Result<(), Failed> {
    let server = RedisServer::start(&["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]);
    let p = RedisPersistence::new(&server.url(), "full")?;
    let original = blob(0, 100 * 1024);
    p.save(&original)?;
    let version = p.version()?;
    // Fill the server through other caches until it refuses.
    let mut fillers = Vec::new();
    let full = loop {
        let filler = RedisPersistence::new(&server.url(), &format!("filler-{}", fillers.len()))?;
        match filler.save(&blob(fillers.len() + 1, 256 * 1024)) {
            Ok(()) => fillers.push(filler),
            Err(e) => break e,
        }
        check(fillers.len() < 100, "the server never filled up")?;
    };
    check_error(&full, ErrorKind::StorageFull)?;
    let err = p
        .save(&blob(99, 300 * 1024))
        .expect_err("a save into a full server fails");
    check_error(&err, ErrorKind::StorageFull)?;
    check(
        p.load()?.as_deref() == Some(&original[..]),
        "the blob saved before is there, whole",
    )?;
    check(p.version()? == version, "the version did not move")?;
    for filler in &fillers {
        check(filler.delete()?, "a delete works on a full server")?;
    }
    p.save(&blob(100, 300 * 1024))?;
    check(
        p.load()?.as_deref() == Some(&blob(100, 300 * 1024)[..]),
        "saves work again once memory is freed",
    )
}
