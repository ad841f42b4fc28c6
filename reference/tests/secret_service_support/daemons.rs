//! A private Secret Service for tests: `dbus-daemon` with a private configuration and
//! `gnome-keyring-daemon` on it, with their own `HOME` and `XDG_RUNTIME_DIR` in a temporary
//! directory. Never the developer's session bus or keyring; nothing in the process
//! environment changes.
//!
//! The bus configuration names no service directories, so nothing is ever activated on
//! it: a test that wants "a bus without a Secret Service" gets exactly that, not a
//! gnome-keyring started behind its back (Debian's `org.freedesktop.secrets.service`
//! would do that on a standard session bus).
//!
//! Shared by the reference crate's tests and benchmarks and the conformance suite's
//! Secret Service target (`#[path]`-included), so it depends only on std and tempfile;
//! the helpers that talk to the Secret Service API are in `mod.rs`.

#![allow(dead_code)]

include!("../skip/report.rs");

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The login keyring's password: `--unlock` creates the keyring with it and unlocks it.
pub const PASSWORD: &str = "private-test-keyring";

/// How long the daemons may take to come up: they take about 50 ms.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The programs the private keyring runs, and the Debian package of each.
const TOOLS: [(&str, &str); 3] = [
    ("dbus-daemon", "dbus"),
    ("gnome-keyring-daemon", "gnome-keyring"),
    ("secret-tool", "libsecret-tools"),
];

/// What is missing to run a private keyring here: Debian package names.
pub fn missing_packages() -> Vec<&'static str> {
    TOOLS
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(_, package)| *package)
        .collect()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Whether this run is CI's, where a missing tool must fail rather than skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Whether the private keyring can run here. When it cannot, and `CI` is set, panics
/// with what to install; otherwise prints a `SKIP` line naming `test` and the reason,
/// and returns false.
pub fn available_or_skip(test: &str) -> bool {
    let missing = missing_packages();
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "a private Secret Service needs the Debian packages {} (run ci/install-deps.sh)",
        missing.join(", ")
    );
    assert!(!in_ci(), "CI is set and {reason}");
    report_skip(test, &reason);
    false
}

/// [`PrivateKeyring::start`] when the tools are there; `None` after printing why not
/// (panicking instead under CI).
pub fn keyring_or_skip(test: &str) -> Option<PrivateKeyring> {
    available_or_skip(test).then(PrivateKeyring::start)
}

/// A private D-Bus bus with nothing on it, killed on drop.
pub struct PrivateBus {
    dir: tempfile::TempDir,
    daemon: Child,
    address: String,
}

impl PrivateBus {
    /// Starts `dbus-daemon` listening on a socket in a new temporary directory.
    ///
    /// Panics when it does not start: the tools are there (checked by the caller), so
    /// that is a real failure.
    pub fn start() -> PrivateBus {
        let dir = tempfile::Builder::new()
            .prefix("ss-")
            .tempdir()
            .expect("temporary directory");
        let runtime = dir.path().join("runtime");
        let home = dir.path().join("home");
        for d in [&runtime, &home] {
            std::fs::create_dir_all(d).expect("create directory");
            set_mode(d, 0o700);
        }
        let socket = runtime.join("bus");
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, bus_config(&socket)).expect("write bus config");
        let mut daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // As root in a container it warns that it cannot raise its fd limit.
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let stdout = daemon.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        if read.is_err() || line.trim().is_empty() {
            let _ = daemon.kill();
            let status = daemon.wait();
            panic!("dbus-daemon printed no address ({read:?}, exit {status:?})");
        }
        PrivateBus {
            dir,
            daemon,
            address: line.trim().to_owned(),
        }
    }

    /// The bus address, e.g. `unix:path=/tmp/ss-…/runtime/bus,guid=…`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The private `HOME`.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The private `XDG_RUNTIME_DIR`.
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.path().join("runtime")
    }

    /// A scratch directory inside the private one, for caches and markers.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join("scratch").join(name);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    }

    /// `program` with the private bus, `HOME` and runtime directory in its environment,
    /// and no display, so that it cannot reach anything of the developer's.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let home = self.home();
        command
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS");
        command
    }
}

impl PrivateBus {
    /// Whether `org.freedesktop.secrets` has an owner on the bus (asked with dbus-send,
    /// so that this file needs no D-Bus crate).
    pub fn secret_service_running(&self) -> bool {
        let output = Command::new("dbus-send")
            .arg(format!("--bus={}", self.address))
            .args([
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run dbus-send");
        assert!(
            output.status.success(),
            "dbus-send NameHasOwner: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).contains("boolean true")
    }

    /// Waits until something owns `org.freedesktop.secrets` on the bus (a daemon that a
    /// test started by hand, e.g. the fix a diagnosis gives); panics after the start
    /// timeout.
    pub fn wait_for_secret_service(&self) {
        let start = Instant::now();
        while !self.secret_service_running() {
            assert!(
                start.elapsed() < START_TIMEOUT,
                "no Secret Service on the bus after {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        stop(&mut self.daemon);
    }
}

/// A private bus with an unlocked gnome-keyring on it, both killed on drop.
pub struct PrivateKeyring {
    keyring: Option<Child>,
    /// The tests' own connection to the bus, made on first use (`PrivateKeyring::connect`).
    connection: std::sync::OnceLock<zbus::blocking::Connection>,
    // Dropped after the keyring, which would otherwise see its bus vanish first.
    bus: PrivateBus,
}

impl PrivateKeyring {
    /// Starts a private bus and an unlocked gnome-keyring with a new login keyring (the
    /// default collection) on it, and waits until it owns `org.freedesktop.secrets`.
    pub fn start() -> PrivateKeyring {
        let bus = PrivateBus::start();
        let mut keyring = PrivateKeyring {
            keyring: None,
            connection: std::sync::OnceLock::new(),
            bus,
        };
        keyring.start_daemon();
        keyring
    }

    fn start_daemon(&mut self) {
        let log = std::fs::File::create(self.bus.dir.path().join("gnome-keyring.log"))
            .expect("daemon log");
        // --foreground: the child is the daemon itself, so it can be killed by its pid.
        // --unlock reads the password from stdin, creating the login keyring if needed.
        let mut daemon = self
            .bus
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start gnome-keyring-daemon");
        {
            let mut stdin = daemon.stdin.take().expect("piped stdin");
            stdin
                .write_all(PASSWORD.as_bytes())
                .expect("write password");
        }
        self.keyring = Some(daemon);
        let start = Instant::now();
        while !self.bus.secret_service_running() {
            if let Some(Ok(Some(status))) = self.keyring.as_mut().map(Child::try_wait) {
                panic!(
                    "gnome-keyring-daemon exited with {status}; log: {}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "gnome-keyring-daemon did not register on the bus in {START_TIMEOUT:?}; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.bus.dir.path().join("gnome-keyring.log")).unwrap_or_default()
    }

    /// When the daemon died under the test (it is not running, and no test stopped it):
    /// how it ended and the end of its log. `None` while it runs, or once a test stopped it.
    ///
    /// The daemon quits on SIGTERM or SIGHUP and when its bus connection closes; a crash
    /// shows as a signal in the status (gnome-keyring has been seen to stop on a fatal
    /// GLib error, `trap int3` in the kernel log).
    fn died(&mut self) -> Option<String> {
        let status = match self.keyring.as_mut().map(Child::try_wait)? {
            Ok(None) => return None,
            Ok(Some(status)) => status.to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        Some(format!(
            "gnome-keyring-daemon is gone: {status}; the end of its log:\n{}",
            tail.join("\n")
        ))
    }

    /// The bus the keyring is on.
    pub fn bus(&self) -> &PrivateBus {
        &self.bus
    }

    /// The bus address.
    pub fn address(&self) -> &str {
        self.bus.address()
    }

    /// The tests' connection to the keyring's bus: one for the keyring's whole life, shared
    /// by every call. gnome-keyring has a known race (GNOME gnome-keyring issues 190, 196,
    /// 199: `gkd_secret_service_get_pkcs11_session: assertion 'client' failed`, then a
    /// fatal GLib error) that clients connecting, asking and disconnecting in quick
    /// succession trigger; a connection per call made that cycle over and over.
    pub fn connect(&self) -> zbus::blocking::Connection {
        self.connection
            .get_or_init(|| {
                zbus::blocking::connection::Builder::address(self.address())
                    .and_then(|b| b.build())
                    .expect("connect to the private bus")
            })
            .clone()
    }

    /// See [`PrivateBus::scratch`].
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.bus.scratch(name)
    }

    /// See [`PrivateBus::command`].
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.bus.command(program)
    }

    /// Kills the daemon and starts it again on the same keyring files: the way back to an
    /// unlocked collection after [`lock_default_collection`](Self::lock_default_collection)
    /// (unlocking through the API needs a prompt), and a check that what was stored
    /// reached the disk.
    pub fn restart_daemon(&mut self) {
        if let Some(mut daemon) = self.keyring.take() {
            stop(&mut daemon);
        }
        let start = Instant::now();
        while self.bus.secret_service_running() {
            assert!(
                start.elapsed() < START_TIMEOUT,
                "old daemon still on the bus"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.start_daemon();
    }

    /// `secret-tool lookup` (libsecret) of `attributes`: the secret, or `None` when it
    /// finds nothing.
    pub fn secret_tool_lookup(&self, attributes: &[(&str, &str)]) -> Option<Vec<u8>> {
        let mut command = self.command("secret-tool");
        command.arg("lookup");
        for (k, v) in attributes {
            command.args([*k, *v]);
        }
        let output = command.output().expect("run secret-tool");
        output.status.success().then_some(output.stdout)
    }

    /// `secret-tool store --label=LABEL ATTRIBUTES…` of `secret` (libsecret).
    pub fn secret_tool_store(&self, label: &str, attributes: &[(&str, &str)], secret: &[u8]) {
        let mut command = self.command("secret-tool");
        command.args(["store", &format!("--label={label}")]);
        for (k, v) in attributes {
            command.args([*k, *v]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .spawn()
            .expect("run secret-tool");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(secret)
            .expect("write the secret");
        let status = child.wait().expect("wait for secret-tool");
        assert!(status.success(), "secret-tool store: {status}");
    }
}

impl Drop for PrivateKeyring {
    fn drop(&mut self) {
        // The keyring is the environment, not what is checked: when its daemon died under
        // the run, say so before its log goes with the scratch directory, or every case
        // that failed with it reads as the backend's failure. (libtest shows it only for a
        // test that failed.)
        if let Some(died) = self.died() {
            eprintln!("{died}");
        }
        if let Some(mut daemon) = self.keyring.take() {
            stop(&mut daemon);
        }
    }
}

fn bus_config(socket: &Path) -> String {
    // The session bus policy and limits of /usr/share/dbus-1/session.conf, with no
    // <servicedir> and no <standard_session_servicedirs/>: nothing can be activated.
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_incoming_unix_fds">250000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_outgoing_unix_fds">250000000</limit>
  <limit name="max_message_size">1000000000</limit>
  <limit name="max_message_unix_fds">4096</limit>
  <limit name="service_start_timeout">120000</limit>
  <limit name="auth_timeout">240000</limit>
  <limit name="pending_fd_timeout">150000</limit>
  <limit name="max_completed_connections">100000</limit>
  <limit name="max_incomplete_connections">10000</limit>
  <limit name="max_connections_per_user">100000</limit>
  <limit name="max_pending_service_starts">10000</limit>
  <limit name="max_names_per_connection">50000</limit>
  <limit name="max_match_rules_per_connection">50000</limit>
  <limit name="max_replies_per_connection">50000</limit>
</busconfig>
"#,
        socket.display()
    )
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
