//! The kernel-keyring backend's file and key against an implementation that is not ours:
//! Python's `jwcrypto` for the JWE and `keyctl` (Debian `keyutils`) for the key
//! (`python/kernel_keyring_jwe.py`). Python reads what we write and we read what Python
//! writes, key included. The venv is a throwaway one in `target/tmp`, as the other interop
//! tests make theirs.
#![cfg(all(target_os = "linux", feature = "kernel-keyring"))]

#[path = "python/venv.rs"]
mod venv;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use identity_cache_persistence::{CachePersistence, KernelKeyringPersistence};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/kernel_keyring_jwe.py")
}

/// The venv's python with jwcrypto, or `None` (after printing why) outside CI.
fn python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            match venv::build(
                "py-jwcrypto-venv",
                Command::new("python3").args(["-m", "venv"]),
                "jwcrypto>=1.5,<2",
                "import jwcrypto.jwe",
            ) {
                Ok(python) => Some(python),
                Err(why) if std::env::var_os("CI").is_some() => {
                    panic!("CI is set, and the jwcrypto venv could not be made: {why}")
                }
                Err(why) => {
                    venv::report_skip("kernel_keyring_python (jwcrypto)", &why);
                    None
                }
            }
        })
        .as_deref()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

#[test]
fn jwcrypto_and_keyctl_read_what_we_write() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("py-reads");
    let p = KernelKeyringPersistence::new(dir.path().join(&name)).expect("path");
    let blob = "{\"AccessToken\":{\"k\":{\"secret\":\"from Rust ✓\"}}}";
    p.save(blob.as_bytes()).expect("save");
    let read = venv::run(
        Command::new(python)
            .arg(script())
            .arg("read")
            .arg(dir.path().join(&name))
            .arg(&name),
    );
    p.remove_key().expect("unlink the test key");
    assert_eq!(read.expect("python read"), blob);
}

#[test]
fn we_read_what_jwcrypto_and_keyctl_write() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("py-writes");
    let blob = "{\"AccessToken\":{\"k\":{\"secret\":\"from Python ✓\"}}}";
    let wrote = venv::run(
        Command::new(python)
            .arg(script())
            .arg("write")
            .arg(dir.path().join(&name))
            .arg(&name)
            .arg(blob),
    );
    let p = KernelKeyringPersistence::new(dir.path().join(&name)).expect("path");
    let loaded = p.load();
    p.remove_key().expect("unlink the test key");
    wrote.expect("python write");
    assert_eq!(
        loaded.expect("load").as_deref(),
        Some(blob.as_bytes()),
        "the key keyctl made and the JWE jwcrypto wrote"
    );
}
