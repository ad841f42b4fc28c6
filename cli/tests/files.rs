//! Every subcommand end to end on real files: the real binary on a real temporary cache
//! directory, real lock files held by a real child process and left behind by SIGKILL.
//! The Secret Service is out of the picture here (the session bus address points where no
//! bus listens); `keyring.rs` covers it.

mod support;

use std::fs;

use support::*;

/// Not a test of its own: the body of the lock-holding child process.
#[test]
fn lock_holder_child() {
    hold_lock_if_asked();
}

#[test]
fn help_names_every_subcommand_and_the_exit_codes() {
    let (_root, dir) = cache_dir();
    let mut help = command(&dir);
    help.arg("--help");
    let help = run(help);
    assert_eq!(help.code, 0, "{help:?}");
    snapshot("help", &dir, false, &help.stdout);
    for sub in ["doctor", "list", "show", "clear", "unlock"] {
        let mut command = command(&dir);
        command.args([sub, "--help"]);
        let out = run(command);
        assert_eq!(out.code, 0, "{sub}: {out:?}");
        assert!(out.stdout.contains("Exit codes:"), "{sub}: {}", out.stdout);
        assert!(out.stdout.contains("--json"), "{sub}: {}", out.stdout);
    }
    let mut bad = command(&dir);
    bad.arg("frobnicate");
    assert_eq!(run(bad).code, 2);
}

#[test]
fn list_names_each_cache_its_backend_size_and_lock() {
    let (_root, dir) = cache_dir();
    write_cache(&dir, "msal.cache", CACHE.as_bytes());
    write_cache(&dir, "msal.cache.nocae", b"{}");
    write_cache(&dir, "msal.cache.cae", b"{\"AccessToken\": {}}");
    write_cache(&dir, "my-tool.cache", b"{}");
    // A keyring cache's marker, whose item cannot be looked up without a bus.
    write_cache(&dir, "keyring.cache", b"");
    write_cache(&dir, "msal.cache.lockfile", b"4194400 /usr/bin/python3");
    write_cache(&dir, "msal.cache.corrupt-1700000000", b"{\"trunc");
    // A save in progress: not a cache.
    write_cache(&dir, ".msal.cache.123-abc.tmp", b"{}");

    let out = run(command(&dir).arg("list").to_owned_command());
    assert_eq!(out.code, 0, "{out:?}");
    assert_no_secret(&out.stdout);
    snapshot("list", &dir, true, &out.stdout);

    let json = run(command(&dir).args(["list", "--json"]).to_owned_command()).json();
    let caches = json["caches"].as_array().expect("caches");
    let row = |name: &str| {
        caches
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {json}"))
    };
    assert_eq!(caches.len(), 5, "{json}");
    assert_eq!(row("msal.cache")["backend"], "plaintext_file");
    assert_eq!(row("msal.cache")["size"], CACHE.len());
    assert_eq!(row("msal.cache")["mode"], "0600");
    assert_eq!(row("msal.cache")["lock"]["state"], "stale");
    assert_eq!(row("msal.cache")["lock"]["pid"], 4194400);
    assert_eq!(row("msal.cache.nocae")["lock"]["state"], "free");
    assert_eq!(row("keyring.cache")["backend"], "marker_without_item");
    assert!(row("msal.cache.cae")["last_change"].is_string());
    assert_eq!(json["keyring_problem"]["cause"], "no_bus");
    assert_eq!(
        json["quarantined"][0],
        dir.join("msal.cache.corrupt-1700000000")
            .display()
            .to_string()
    );
}

#[test]
fn list_of_a_directory_that_does_not_exist_is_empty() {
    let (_root, dir) = cache_dir();
    let missing = dir.join("nothing-here");
    let json = run(command(&missing)
        .args(["list", "--json"])
        .to_owned_command())
    .json();
    assert_eq!(json["directory_exists"], false);
    assert_eq!(json["caches"], serde_json::json!([]));
}

#[test]
fn show_lists_accounts_tokens_scopes_and_expiry_with_secrets_redacted() {
    let (_root, dir) = cache_dir();
    write_cache(&dir, "msal.cache", CACHE.as_bytes());
    let out = run(command(&dir)
        .args(["show", "msal.cache"])
        .to_owned_command());
    assert_eq!(out.code, 0, "{out:?}");
    assert_no_secret(&out.stdout);
    snapshot("show", &dir, false, &out.stdout);

    let out = run(command(&dir)
        .args(["show", "msal.cache", "--json"])
        .to_owned_command());
    assert_no_secret(&out.stdout);
    let json = out.json();
    assert_eq!(json["backend"], "plaintext_file");
    assert_eq!(json["accounts"][0]["username"], "alice@contoso.com");
    let tokens = json["tokens"].as_array().expect("tokens");
    let kinds: Vec<&str> = tokens
        .iter()
        .map(|t| t["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        ["AccessToken", "AccessToken", "RefreshToken", "IdToken"]
    );
    assert!(tokens.iter().all(|t| t["secret"] == "<redacted>"));
    let vault = tokens
        .iter()
        .find(|t| t["scopes"] == serde_json::json!(["https://vault.azure.net/.default"]))
        .expect("the vault token");
    assert_eq!(vault["expires_on"], "2100-01-01T00:00:00Z");
    assert_eq!(vault["expired"], false);
    assert_eq!(tokens[0]["expired"], true);
    assert_eq!(tokens[2]["family_id"], "1");
    assert_eq!(json["unknown_sections"], 1);
    let unknown = json["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["name"] == "FooSdkMetadata")
        .expect("unknown section counted");
    assert_eq!(unknown["entries"], 2);
    assert_eq!(unknown["known"], false);
}

#[test]
fn show_of_a_missing_or_corrupt_cache_fails_with_its_code() {
    let (_root, dir) = cache_dir();
    let missing = run(command(&dir)
        .args(["show", "nope.cache", "--json"])
        .to_owned_command());
    assert_eq!(missing.code, 4, "{missing:?}");
    assert_eq!(missing.json()["error"]["cause"], "not_found");

    write_cache(
        &dir,
        "msal.cache",
        b"{\"AccessToken\": {\"k\": {\"secret\": \"at-SECRET",
    );
    let corrupt = run(command(&dir)
        .args(["show", "msal.cache"])
        .to_owned_command());
    assert_eq!(corrupt.code, 23, "{corrupt:?}");
    assert_no_secret(&corrupt.stderr);
    assert!(
        corrupt
            .stderr
            .contains("msal.cache.corrupt-<epoch seconds>"),
        "{}",
        corrupt.stderr
    );

    let bad_name = run(command(&dir)
        .args(["show", "../etc/passwd"])
        .to_owned_command());
    assert_eq!(bad_name.code, 2, "{bad_name:?}");
}

#[test]
fn clear_deletes_only_after_confirmation() {
    let (_root, dir) = cache_dir();
    let path = write_cache(&dir, "msal.cache", CACHE.as_bytes());

    let no = run_with_input(
        command(&dir)
            .args(["clear", "msal.cache"])
            .to_owned_command(),
        "n\n",
    );
    assert_eq!(no.code, 3, "{no:?}");
    assert!(no.stderr.contains("[y/N]"), "{}", no.stderr);
    assert_eq!(fs::read_to_string(&path).expect("kept"), CACHE);

    let eof = run(command(&dir)
        .args(["clear", "msal.cache"])
        .to_owned_command());
    assert_eq!(eof.code, 3, "{eof:?}");
    assert!(path.exists());

    let yes = run_with_input(
        command(&dir)
            .args(["clear", "msal.cache"])
            .to_owned_command(),
        "y\n",
    );
    assert_eq!(yes.code, 0, "{yes:?}");
    assert!(!path.exists());
    assert!(
        !dir.join("msal.cache.lockfile").exists(),
        "the lock was released"
    );

    write_cache(&dir, "msal.cache.nocae", b"{}");
    let json = run(command(&dir)
        .args(["clear", "msal.cache.nocae", "--yes", "--json"])
        .to_owned_command());
    assert_eq!(json.code, 0, "{json:?}");
    assert_eq!(json.json()["deleted"], true);
    assert!(!dir.join("msal.cache.nocae").exists());

    let gone = run(command(&dir)
        .args(["clear", "msal.cache", "--yes"])
        .to_owned_command());
    assert_eq!(gone.code, 4, "{gone:?}");
}

#[test]
fn clear_waits_for_the_lock_and_never_deletes_under_a_live_holder() {
    let (_root, dir) = cache_dir();
    let path = write_cache(&dir, "msal.cache", CACHE.as_bytes());
    let holder = LockHolder::start("lock_holder_child", &dir.join("msal.cache.lockfile"));
    let out = run(command(&dir)
        .args(["clear", "msal.cache", "--yes", "--wait", "1"])
        .to_owned_command());
    assert_eq!(out.code, 5, "{out:?}");
    assert!(
        out.stderr.contains(&format!("pid {}", holder.pid())),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_to_string(&path).expect("kept"), CACHE);
    drop(holder);
}

#[test]
fn unlock_refuses_a_live_holder_and_removes_the_lock_of_a_killed_one() {
    let (_root, dir) = cache_dir();
    write_cache(&dir, "msal.cache", CACHE.as_bytes());
    let lock = dir.join("msal.cache.lockfile");
    let holder = LockHolder::start("lock_holder_child", &lock);
    let pid = holder.pid();

    let refused = run(command(&dir)
        .args(["unlock", "msal.cache"])
        .to_owned_command());
    assert_eq!(refused.code, 5, "{refused:?}");
    assert!(
        refused.stderr.contains(&format!("held by pid {pid} (")),
        "{}",
        refused.stderr
    );
    assert!(lock.exists(), "a live holder's lock stays");
    snapshot("unlock_refused", &dir, false, &refused.stderr);

    holder.kill();
    assert!(lock.exists(), "SIGKILL leaves the lock file behind");

    let doctor = run(command(&dir)
        .args(["doctor", "--allow-unencrypted"])
        .to_owned_command());
    assert_eq!(doctor.code, 22, "{doctor:?}");
    snapshot("doctor_stale_lock", &dir, false, &doctor.stdout);
    let json = run(command(&dir)
        .args(["doctor", "--allow-unencrypted", "--json"])
        .to_owned_command())
    .json();
    let stale = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["id"] == "stale_lock")
        .expect("stale lock found");
    assert_eq!(stale["exit_code"], 22);
    assert!(
        stale["summary"]
            .as_str()
            .expect("text")
            .contains(&format!("pid {pid}"))
    );

    let removed = run(command(&dir)
        .args(["unlock", "msal.cache", "--json"])
        .to_owned_command());
    assert_eq!(removed.code, 0, "{removed:?}");
    let removed = removed.json();
    assert_eq!(removed["outcome"], "removed");
    assert_eq!(removed["pid"], pid);
    assert_eq!(removed["reason"], "its holder is not running");
    assert!(!lock.exists());

    let again = run(command(&dir)
        .args(["unlock", "msal.cache"])
        .to_owned_command());
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("is not locked"), "{}", again.stdout);

    let healthy = run(command(&dir)
        .args(["doctor", "--allow-unencrypted"])
        .to_owned_command());
    assert_eq!(healthy.code, 0, "{healthy:?}");
}

#[test]
fn doctor_without_a_session_bus_says_how_to_start_one() {
    let (_root, dir) = cache_dir();
    write_cache(&dir, "msal.cache", CACHE.as_bytes());
    let out = run(command(&dir).arg("doctor").to_owned_command());
    assert_eq!(out.code, 10, "{out:?}");
    assert!(out.stdout.contains("dbus-run-session"), "{}", out.stdout);
    snapshot("doctor_no_bus", &dir, false, &out.stdout);
    let json = run(command(&dir).args(["doctor", "--json"]).to_owned_command()).json();
    assert_eq!(json["healthy"], false);
    assert_eq!(json["exit_code"], 10);
    assert_eq!(json["findings"][0]["id"], "no_bus");
    assert_eq!(json["findings"][0]["status"], "problem");
}

#[cfg(target_os = "linux")]
#[test]
fn doctor_without_a_session_bus_shows_the_kernel_keyring_in_use_and_why() {
    let (_root, dir) = cache_dir();
    write_cache(&dir, "msal.cache", CACHE.as_bytes());
    let mut doctor = command(&dir);
    doctor
        .env_remove("IDENTITY_CACHE_NO_KERNEL_KEYRING")
        .args(["doctor", "--json"]);
    let json = run(doctor).json();
    let findings = json["findings"].as_array().expect("findings");
    let in_use = findings
        .iter()
        .find(|f| f["id"] == "kernel_keyring")
        .unwrap_or_else(|| panic!("a kernel_keyring finding: {json}"));
    assert_eq!(in_use["status"], "ok");
    let summary = in_use["summary"].as_str().expect("summary");
    assert!(
        summary.contains("Backend in use: kernel-keyring"),
        "{summary}"
    );
    assert!(
        summary.contains("No D-Bus session bus"),
        "the reason: {summary}"
    );
    let no_bus = findings
        .iter()
        .find(|f| f["id"] == "no_bus")
        .expect("the missing bus stays on record");
    assert_eq!(no_bus["status"], "warning", "{no_bus}");
}

#[test]
fn doctor_with_plaintext_allowed_and_private_files_is_healthy() {
    let (_root, dir) = cache_dir();
    write_cache(&dir, "msal.cache", CACHE.as_bytes());
    let out = run(command(&dir)
        .args(["doctor", "--allow-unencrypted"])
        .to_owned_command());
    assert_eq!(out.code, 0, "{out:?}");
    assert_no_secret(&out.stdout);
    snapshot("doctor_plaintext_healthy", &dir, false, &out.stdout);
}

#[test]
fn doctor_finds_a_corrupt_cache_and_says_where_its_copy_will_go() {
    let (_root, dir) = cache_dir();
    write_cache(&dir, "msal.cache", CACHE.as_bytes());
    write_cache(
        &dir,
        "msal.cache.nocae",
        &CACHE.as_bytes()[..CACHE.len() / 2],
    );
    let out = run(command(&dir)
        .args(["doctor", "--allow-unencrypted"])
        .to_owned_command());
    assert_eq!(out.code, 23, "{out:?}");
    assert_no_secret(&out.stdout);
    snapshot("doctor_corrupt_cache", &dir, false, &out.stdout);
}

/// Unix only: modes are what `doctor` checks there. On Windows it reports no mode (the
/// cache directory's ACL is inherited from the user's profile), so this check has no
/// counterpart there.
#[cfg(unix)]
#[test]
fn doctor_finds_modes_wider_than_0600_and_0700() {
    let (_root, dir) = cache_dir();
    let path = write_cache(&dir, "msal.cache", CACHE.as_bytes());
    set_mode(&dir, 0o755);
    set_mode(&path, 0o644);
    let out = run(command(&dir)
        .args(["doctor", "--allow-unencrypted"])
        .to_owned_command());
    assert_eq!(out.code, 21, "{out:?}");
    snapshot("doctor_wrong_modes", &dir, false, &out.stdout);
    let json = run(command(&dir)
        .args(["doctor", "--allow-unencrypted", "--json"])
        .to_owned_command())
    .json();
    let wide: Vec<&str> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["id"] == "mode_too_wide")
        .map(|f| f["check"].as_str().expect("check"))
        .collect();
    assert_eq!(wide, ["directory", "file"]);
}

/// A directory the user cannot enter: as root (root passes every permission check) the
/// binary runs as `nobody` on a root-owned directory; otherwise the directory is made
/// mode 000. Unix only: it needs a second user (or modes) to refuse the directory, and
/// the Windows job runs as one user with no way here to deny it its own profile.
#[cfg(unix)]
#[test]
fn doctor_finds_a_directory_the_user_cannot_read() {
    let (root, dir) = cache_dir();
    write_cache(&dir, "msal.cache", CACHE.as_bytes());
    let mut command = command(&dir);
    command.args(["doctor", "--allow-unencrypted", "--json"]);
    if is_root() {
        use std::os::unix::process::CommandExt;
        // Let nobody reach the directory and be refused by the directory itself.
        set_mode(root.path(), 0o755);
        command.uid(65534).gid(65534);
    } else {
        set_mode(&dir, 0o000);
    }
    let out = run(command);
    set_mode(&dir, 0o700);
    assert_eq!(out.code, 20, "{out:?}");
    let json = out.json();
    let problem = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["status"] == "problem")
        .expect("a problem");
    assert_eq!(problem["check"], "directory");
    assert_eq!(problem["exit_code"], 20);
    assert!(
        problem["fix"].as_str().expect("fix").contains("chown"),
        "{problem}"
    );
}

/// `Command` builders return `&mut Command`; tests pass commands by value.
trait ToOwnedCommand {
    fn to_owned_command(&mut self) -> std::process::Command;
}

impl ToOwnedCommand for std::process::Command {
    fn to_owned_command(&mut self) -> std::process::Command {
        std::mem::replace(self, std::process::Command::new("/nonexistent"))
    }
}

/// A cache kept by the kernel-keyring backend: listed as such, shown decrypted (secrets
/// redacted), and after its key is gone, shown as gone, never as a corrupt plaintext file.
#[cfg(target_os = "linux")]
#[test]
fn list_show_and_clear_understand_a_kernel_keyring_cache() {
    use identity_cache_persistence::{CachePersistence, KernelKeyringPersistence};

    let (_root, dir) = cache_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let name = format!("kk-{}-{:x}.cache", std::process::id(), fastrand_like());
    let kernel = KernelKeyringPersistence::new(dir.join(&name)).expect("path");
    kernel.save(CACHE.as_bytes()).expect("save");

    let json = run(command(&dir).args(["list", "--json"]).to_owned_command()).json();
    let row = json["caches"]
        .as_array()
        .expect("caches")
        .iter()
        .find(|c| c["name"] == name.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(row["backend"], "kernel_keyring", "{row}");

    let shown = run(command(&dir)
        .args(["show", &name, "--json"])
        .to_owned_command());
    assert_eq!(shown.code, 0, "{shown:?}");
    assert_eq!(shown.json()["backend"], "kernel_keyring");
    assert!(!shown.stdout.contains("SECRET"), "no token value shown");

    kernel.remove_key().expect("unlink");
    let gone = run(command(&dir).args(["show", &name]).to_owned_command());
    assert_eq!(gone.code, 4, "{gone:?}");
    assert!(gone.stderr.contains("kernel key that is gone"), "{gone:?}");

    let cleared = run(command(&dir)
        .args(["clear", &name, "--yes"])
        .to_owned_command());
    assert_eq!(cleared.code, 0, "{cleared:?}");
    assert!(!dir.join(&name).exists());
}

/// A distinct number per run without another dependency.
#[cfg(target_os = "linux")]
fn fastrand_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
