//! Running the real `identity-cache` binary on real temporary directories, the caches the
//! tests put there, a real child process holding a cache lock, and the snapshot filters
//! that hide what differs between runs (temporary paths, pids, times, bus addresses).

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Set in a child of the test binary: the lock file it acquires and holds until killed.
pub const HOLD_ENV: &str = "IDENTITY_CACHE_CLI_TEST_HOLD";
const READY: &str = "lock-held";

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// The binary with `--dir dir`, no session bus (an address where none listens) unless the
/// test gives one, and no variable of the developer's that could point it elsewhere.
pub fn command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_identity-cache"));
    command
        .arg("--dir")
        .arg(dir)
        .env_remove("IDENTITY_CACHE_DIR")
        // The Secret Service findings as such; tests of the kernel keyring remove it.
        .env("IDENTITY_CACHE_NO_KERNEL_KEYRING", "true")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}/no-bus", dir.display()),
        )
        .stdin(Stdio::null());
    command
}

pub fn run(mut command: Command) -> Run {
    let output = command.output().expect("run identity-cache");
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// Runs `command` with `input` on stdin.
pub fn run_with_input(mut command: Command, input: &str) -> Run {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn identity-cache");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    Run {
        code: output.status.code().expect("exited"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8"),
    }
}

/// A private cache directory (0700) inside a new temporary directory.
pub fn cache_dir() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::Builder::new()
        .prefix("idc-")
        .tempdir()
        .expect("tempdir");
    let dir = root.path().join("IdentityService");
    std::fs::create_dir(&dir).expect("mkdir");
    #[cfg(unix)]
    set_mode(&dir, 0o700);
    (root, dir)
}

/// Writes a cache file with mode 0600, as the SDKs do.
pub fn write_cache(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write cache");
    #[cfg(unix)]
    set_mode(&path, 0o600);
    path
}

/// Unix only: on Windows the CLI has no mode checks (an ACL is not a mode), so there is
/// nothing to set up.
#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Secrets in [`CACHE`]: no output may contain this.
pub const SECRET_MARK: &str = "SECRET-";

/// An MSAL unified cache as Python MSAL writes it after an interactive sign-in: an
/// account, its refresh, ID and access tokens (one expired in 2023, one valid until
/// 2100), app metadata, and a section of another SDK.
pub const CACHE: &str = r#"{
    "Account": {
        "uid.utid-login.microsoftonline.com-utid": {
            "home_account_id": "uid.utid", "environment": "login.microsoftonline.com",
            "realm": "utid", "local_account_id": "uid", "username": "alice@contoso.com",
            "authority_type": "MSSTS"
        }
    },
    "RefreshToken": {
        "uid.utid-login.microsoftonline.com-refreshtoken-04b07795-8ddb-461a-bbee-02f9e1bf7b46--": {
            "credential_type": "RefreshToken", "secret": "rt-SECRET-0123456789",
            "home_account_id": "uid.utid", "environment": "login.microsoftonline.com",
            "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "target": "", "family_id": "1"
        }
    },
    "IdToken": {
        "uid.utid-login.microsoftonline.com-idtoken-04b07795-8ddb-461a-bbee-02f9e1bf7b46-utid-": {
            "credential_type": "IdToken", "secret": "header.SECRET-id-token.sig",
            "home_account_id": "uid.utid", "environment": "login.microsoftonline.com",
            "realm": "utid", "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
        }
    },
    "AccessToken": {
        "uid.utid-login.microsoftonline.com-accesstoken-04b07795-8ddb-461a-bbee-02f9e1bf7b46-utid-https://management.core.windows.net//user_impersonation https://management.core.windows.net//.default": {
            "credential_type": "AccessToken", "secret": "at-SECRET-expired",
            "home_account_id": "uid.utid", "environment": "login.microsoftonline.com",
            "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "realm": "utid",
            "target": "https://management.core.windows.net//user_impersonation https://management.core.windows.net//.default",
            "cached_at": "1699996400", "expires_on": "1700000000", "token_type": "Bearer"
        },
        "uid.utid-login.microsoftonline.com-accesstoken-04b07795-8ddb-461a-bbee-02f9e1bf7b46-utid-https://vault.azure.net/.default": {
            "credential_type": "AccessToken", "secret": "at-SECRET-valid",
            "home_account_id": "uid.utid", "environment": "login.microsoftonline.com",
            "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "realm": "utid",
            "target": "https://vault.azure.net/.default",
            "cached_at": "4102441200", "expires_on": "4102444800", "token_type": "Bearer"
        }
    },
    "AppMetadata": {
        "appmetadata-login.microsoftonline.com-04b07795-8ddb-461a-bbee-02f9e1bf7b46": {
            "client_id": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
            "environment": "login.microsoftonline.com", "family_id": "1"
        }
    },
    "FooSdkMetadata": {"a": {"secret": "foo-SECRET-x"}, "b": {}}
}"#;

/// A child process (this test binary again, running only `test_name`) that holds the
/// lock at `lock_path` until it is killed.
pub struct LockHolder {
    child: Child,
}

impl LockHolder {
    pub fn start(test_name: &str, lock_path: &Path) -> LockHolder {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
            .env(HOLD_ENV, lock_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the lock holder");
        let stdout = child.stdout.take().expect("stdout");
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains(READY));
        assert!(ready, "the lock holder did not take the lock");
        LockHolder { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no destructor runs, the lock file stays behind.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of the holder test: in a child started by [`LockHolder::start`], takes the
/// lock and sleeps; in a normal test run, returns at once.
pub fn hold_lock_if_asked() {
    let Some(path) = std::env::var_os(HOLD_ENV) else {
        return;
    };
    let lock = identity_cache_persistence::lock::FileLock::new(PathBuf::from(path));
    let _guard = lock
        .acquire(Duration::from_secs(30))
        .expect("acquire the lock");
    println!("{READY}");
    std::io::stdout().flush().expect("flush");
    std::thread::sleep(Duration::from_secs(600));
}

/// Filters for snapshots: the temporary directory, pids, process names, bus addresses,
/// and with `times` the current times (file changes); `show` has only the cache's own
/// fixed instants, which stay.
pub fn filters(dir: &Path, times: bool) -> Vec<(String, String)> {
    let root = dir.parent().expect("parent").display().to_string();
    let mut filters = vec![
        (regex_escape(&root), "[TMP]".to_owned()),
        (
            r"pid \d+ \([^)]*\)".to_owned(),
            "pid [PID] ([PROCESS])".to_owned(),
        ),
        (r"pid \d+".to_owned(), "pid [PID]".to_owned()),
        (r"kill \d+".to_owned(), "kill [PID]".to_owned()),
        (
            r"unix:path=[^ ,`]+(,guid=[0-9a-f]+)?".to_owned(),
            "[BUS]".to_owned(),
        ),
    ];
    if times {
        filters.push((
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ".to_owned(),
            "[TIME]".to_owned(),
        ));
    }
    filters
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// Asserts `text` shows no secret of [`CACHE`].
pub fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET_MARK), "a secret was printed:\n{text}");
}

/// Whether this process runs as root (then permission tests drop to `nobody`).
#[cfg(unix)]
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `insta` snapshot `name` of `text`, through [`filters`].
pub fn snapshot(name: &str, dir: &Path, times: bool, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    for (re, to) in filters(dir, times) {
        settings.add_filter(&re, to);
    }
    settings.bind(|| insta::assert_snapshot!(name, text));
}
