//! A private `redis-server` for tests: on 127.0.0.1, on a port found free, with its data
//! in a temporary directory. Never a system Redis service.
//!
//! Shared by the reference crate's Redis tests and benchmark and the conformance suite's
//! Redis target (`#[path]`-included), so it depends only on std, tempfile and redis.

#![allow(dead_code)]

include!("../skip/report.rs");

use std::{
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// How long the server may take to accept connections: it takes a few milliseconds.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts at a free port: another program may take the port between our probe and the
/// server's bind.
const PORT_ATTEMPTS: usize = 8;

/// Whether `redis-server` is on the PATH.
pub fn installed() -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
    })
}

/// Whether a missing `redis-server` must fail the run rather than skip it: in CI on
/// Linux, where the gate installs it (ci/install-deps.sh). The macOS and Windows CI jobs
/// have none and skip, like a developer's machine.
pub fn required() -> bool {
    let in_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
    in_ci && cfg!(target_os = "linux")
}

/// Why the tests cannot run here, when they cannot.
pub const MISSING: &str =
    "the Redis tests need redis-server (Debian package redis-server; run ci/install-deps.sh)";

/// Whether a server can run here. When it cannot and it is [`required`], panics with what to
/// install; otherwise prints a `SKIP` line naming `test` and returns false.
pub fn available_or_skip(test: &str) -> bool {
    if installed() {
        return true;
    }
    assert!(!required(), "CI is set and {MISSING}");
    report_skip(test, MISSING);
    false
}

/// A `redis-server` of this test, killed on drop.
pub struct RedisServer {
    dir: tempfile::TempDir,
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with the default settings (no persistence) plus `args`
    /// (configuration directives, e.g. `["--appendonly", "yes"]`).
    ///
    /// Panics when it does not start: `redis-server` is there (the caller checked), so
    /// that is a real failure.
    pub fn start(args: &[&str]) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("redis-")
            .tempdir()
            .expect("temporary directory");
        let mut server = RedisServer {
            dir,
            port: 0,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
        };
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on any of {PORT_ATTEMPTS} free ports");
    }

    /// Starts the process on `self.port`; false when it exited (port taken).
    fn spawn(&mut self) -> bool {
        let log = self.dir.path().join("redis.log");
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(
                    log.contains("Address already in use"),
                    "redis-server exited at start:\n{log}"
                );
                return false;
            }
            if self.ping() {
                self.child = Some(child);
                return true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("redis-server did not answer within {START_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn ping(&self) -> bool {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            return false;
        }
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new connection for the test's own commands (CONFIG, CLIENT KILL, raw SET/GET).
    pub fn admin(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .expect("admin connection to the test's redis-server")
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (no shutdown save) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory, with the same settings:
    /// what it persisted (`appendonly yes`) is loaded again.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        // The port was ours a moment ago; only a race with another program takes it.
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "port {} stayed taken after the restart",
                self.port
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on right now: bound by us, then released for the server.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a port on 127.0.0.1")
}
