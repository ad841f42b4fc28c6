//! The kernel-keyring backend on this machine's real kernel keyring: chosen by
//! `persistence_for` without a D-Bus session, read by a second process, a lost key, a
//! tampered file. The key is removed with `keyctl` (Debian `keyutils`), as a user would.
//!
//! Every test names its cache uniquely: the key is named by the cache name, so caches of
//! one name in two temporary directories would share a key.
#![cfg(all(target_os = "linux", feature = "kernel-keyring"))]

#[path = "support/logs.rs"]
mod logs;

use std::{fs, path::Path, process::Command};

use identity_cache_persistence::{
    CachePersistence, ErrorKind, KernelKeyringPersistence, TokenCachePersistenceOptions,
    persistence_for,
};

/// The child's environment: which directory and name to open, and what to do.
const CHILD_DIR: &str = "KERNEL_KEYRING_TEST_DIR";
const CHILD_NAME: &str = "KERNEL_KEYRING_TEST_NAME";
const CHILD_ACTION: &str = "KERNEL_KEYRING_TEST_ACTION";

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

fn options(dir: &Path, name: &str) -> TokenCachePersistenceOptions {
    TokenCachePersistenceOptions {
        enabled: true,
        name: name.into(),
        directory: Some(dir.to_path_buf()),
        ..Default::default()
    }
}

/// Runs this test binary as a second process, without a D-Bus session, doing `action`
/// on the cache; returns what it printed.
fn child(dir: &Path, name: &str, action: &str) -> String {
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env(CHILD_DIR, dir)
        .env(CHILD_NAME, name)
        .env(CHILD_ACTION, action)
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {action} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The second process: `persistence_for` with default options (no D-Bus session), then
/// `save:<text>` or `load`, printing `backend=…` and `loaded=…`.
#[test]
fn child_process_entry() {
    let (Some(dir), Some(name), Some(action)) = (
        std::env::var_os(CHILD_DIR),
        std::env::var(CHILD_NAME).ok(),
        std::env::var(CHILD_ACTION).ok(),
    ) else {
        return; // Run as a test of its own: nothing to do.
    };
    let p = persistence_for(&options(Path::new(&dir), &name))
        .expect("persistence_for")
        .expect("enabled");
    println!("backend={}", p.describe().backend);
    if let Some(text) = action.strip_prefix("save:") {
        p.save(text.as_bytes()).expect("save");
    } else {
        let loaded = p.load().expect("load");
        println!(
            "loaded={}",
            loaded.map_or("<none>".into(), |b| String::from_utf8_lossy(&b)
                .into_owned())
        );
    }
}

#[test]
fn without_dbus_persistence_for_is_the_kernel_keyring_and_a_second_process_reads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("two-processes");
    let wrote = child(dir.path(), &name, "save:{\"from\":\"the first process\"}");
    assert!(wrote.contains("backend=kernel-keyring"), "{wrote}");
    let read = child(dir.path(), &name, "load");
    assert!(read.contains("backend=kernel-keyring"), "{read}");
    assert!(
        read.contains("loaded={\"from\":\"the first process\"}"),
        "{read}"
    );
    // Encrypted at rest, owner-only, and the key is where `keyctl` finds it.
    let file = dir.path().join(&name);
    let stored = fs::read(&file).expect("cache file");
    assert!(!String::from_utf8_lossy(&stored).contains("first process"));
    assert_eq!(stored.split(|b| *b == b'.').count(), 5, "compact JWE");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&file).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(key_id(&name).is_some(), "keyctl finds key {name:?}");
    unlink_key(&name);
}

#[test]
fn after_keyctl_unlink_the_next_load_is_empty_with_a_warning_and_a_save_works() {
    for removal in ["unlink", "revoke"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = unique(removal);
        let p = KernelKeyringPersistence::new(dir.path().join(&name)).expect("path");
        p.save(b"{\"before\":1}").expect("save");
        let old = key_id(&name).expect("a key after the first save");
        keyctl(&[removal, &old]);
        let logs = logs::captured();
        let before = logs.lock().expect("logs").len();

        assert_eq!(
            p.load().expect("no error for a lost key"),
            None,
            "{removal}"
        );
        assert_eq!(p.load().expect("and not on the next load either"), None);
        let written = String::from_utf8_lossy(&logs.lock().expect("logs")[before..]).into_owned();
        assert!(
            written.contains("WARN") && written.contains("key is gone"),
            "a warning: {written}"
        );
        assert!(!written.contains("before"), "no plaintext in the logs");

        p.save(b"{\"after\":2}").expect("a save makes a new key");
        let new = key_id(&name).expect("a new key");
        assert_ne!(new, old, "{removal}");
        assert_eq!(
            p.load().expect("load").as_deref(),
            Some(&b"{\"after\":2}"[..])
        );
        unlink_key(&name);
    }
}

#[test]
fn a_tampered_file_is_corrupt_data_and_left_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("tampered");
    let path = dir.path().join(&name);
    let p = KernelKeyringPersistence::new(&path).expect("path");
    p.save(b"{\"secret\":\"tokens\"}").expect("save");
    let tampered = flip_ciphertext(&fs::read(&path).expect("read"));
    fs::write(&path, &tampered).expect("tamper");
    for _ in 0..2 {
        let err = p.load().expect_err("tampered");
        assert_eq!(err.kind(), ErrorKind::CorruptData, "{err}");
        assert!(!format!("{err:?}").contains("tokens"));
    }
    assert_eq!(fs::read(&path).expect("read"), tampered, "left as it was");
    unlink_key(&name);
}

#[test]
fn the_probe_leaves_no_key_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = KernelKeyringPersistence::new(dir.path().join(unique("probe"))).expect("path");
    p.validate().expect("the kernel keyring works here");
    let listed = keyctl(&["rdescribe", "@u"]);
    assert!(!listed.contains("validation"), "{listed}");
    assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
}

/// Changes one character in the middle of the ciphertext field (still base64url).
fn flip_ciphertext(jwe: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(jwe).expect("ascii");
    let fields: Vec<&str> = text.split('.').collect();
    let start = fields[0].len() + fields[1].len() + fields[2].len() + 3;
    let at = start + fields[3].len() / 2;
    let mut out = jwe.to_vec();
    out[at] = if out[at] == b'A' { b'B' } else { b'A' };
    out
}

/// `keyctl` with `args`; its standard output.
fn keyctl(args: &[&str]) -> String {
    let out = Command::new("keyctl")
        .args(args)
        .output()
        .expect("keyctl (Debian package keyutils; ci/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "keyctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The serial of the cache's key, as `keyctl search` finds it from the user keyring
/// (the persistent keyring is linked into it).
fn key_id(name: &str) -> Option<String> {
    let out = Command::new("keyctl")
        .args(["search", "@u", "user", name])
        .output()
        .expect("keyctl");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Removes a test's key from every keyring the session reaches.
fn unlink_key(name: &str) {
    if let Some(id) = key_id(name) {
        let _ = Command::new("keyctl").args(["unlink", &id]).output();
    }
}
