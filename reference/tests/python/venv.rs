//! The throwaway Python venv of the interop tests, shared by every test target that
//! drives Python msal or msal-extensions (include with `#[path = "python/venv.rs"] mod venv;`).
//!
//! It is the venv `tests/lock.rs` builds (same directory, ready marker and setup lock), so
//! whichever target runs first builds it and the others reuse it.

// Each test target that includes this file uses a part of it.
#![allow(dead_code)]

include!("../skip/report.rs");

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// The venv's python, or `None` (after printing why) when it cannot be made outside CI.
/// With `CI` set, a venv that cannot be made fails the test instead of skipping it.
pub fn python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| match make_venv() {
            Ok(python) => Some(python),
            Err(why) if std::env::var_os("CI").is_some() => {
                panic!("CI is set, and the Python interop venv could not be made: {why}")
            }
            Err(why) => {
                report_skip("python interop", &why.to_string());
                None
            }
        })
        .as_deref()
}

/// Makes `target/tmp/py-interop-venv` with msal-extensions (which brings msal) and
/// portalocker.
fn make_venv() -> Result<PathBuf, String> {
    build(
        "py-interop-venv",
        Command::new("python3").args(["-m", "venv"]),
        "msal-extensions[portalocker]>=1.3,<2",
        "import msal, msal_extensions.cache_lock, msal_extensions.filelock",
    )
}

/// Makes the venv `target/tmp/<name>` once with `create` (given the venv path as its last
/// argument) and `requirement` installed, and checks that `imports` import; its python.
///
/// A `ready` marker says a venv is complete, and an OS lock on a file beside it keeps test
/// processes running at the same time from building it twice.
pub fn build(
    name: &str,
    create: &mut Command,
    requirement: &str,
    imports: &str,
) -> Result<PathBuf, String> {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let venv = base.join(name);
    let python = venv.join("bin").join("python");
    let ready = venv.join("ready");
    fs::create_dir_all(base).map_err(|e| e.to_string())?;
    let guard =
        fs::File::create(base.join(format!("{name}.setup-lock"))).map_err(|e| e.to_string())?;
    guard.lock().map_err(|e| e.to_string())?;
    if !ready.exists() {
        let _ = fs::remove_dir_all(&venv);
        run(create.arg(&venv))?;
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ]))?;
        fs::write(&ready, "").map_err(|e| e.to_string())?;
    }
    run(Command::new(&python).args(["-c", imports]))?;
    Ok(python)
}

/// Runs `command`; its stdout, or an error with its stderr.
pub fn run(command: &mut Command) -> Result<String, String> {
    let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
