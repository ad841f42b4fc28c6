//! The temporary files a save writes before renaming them over the cache file, and the
//! removal of those that a killed saver left behind.
//!
//! A temporary file is named `.<cache file name>.<pid>-<random>.tmp`: hidden, beside the
//! cache file (a rename is atomic only within one file system), and carrying the pid of
//! its writer so that an orphan can be told from a save in progress.

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
};

use crate::lock::holder::liveness;

/// A fresh temporary-file path for a save of `cache` by this process.
pub(crate) fn path_for(cache: &Path, dir: &Path) -> PathBuf {
    dir.join(format!(
        "{}{}-{:016x}.tmp",
        prefix(cache),
        std::process::id(),
        fastrand::u64(..)
    ))
}

/// Removes the temporary files of `cache` whose writer no longer runs.
///
/// A save killed between creating its temporary file and renaming it leaves the file
/// behind; without this sweep such files would accumulate, each holding a copy of the
/// cache. Files of running processes (this one included) are saves in progress and are
/// left alone, and so is anything whose name does not parse. Failures are ignored: the
/// sweep is housekeeping and must never fail a save.
pub(crate) fn remove_orphans(cache: &Path, dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = prefix(cache);
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = writer_pid(&name, &prefix) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(written) = entry.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        if !liveness(pid, written).may_hold() && fs::remove_file(entry.path()).is_ok() {
            tracing::info!(
                path = %entry.path().display(),
                pid,
                "removed a temporary file left by a save that was killed"
            );
        }
    }
}

fn prefix(cache: &Path) -> String {
    format!(
        ".{}.",
        cache
            .file_name()
            .map(OsStr::to_string_lossy)
            .unwrap_or_default()
    )
}

/// The writer's pid, when `name` is one of our temporary files for `prefix`.
fn writer_pid(name: &OsStr, prefix: &str) -> Option<u32> {
    let rest = name.to_str()?.strip_prefix(prefix)?.strip_suffix(".tmp")?;
    let (pid, random) = rest.split_once('-')?;
    (random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| pid.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_writer_pid() {
        let cache = Path::new("/d/msal.cache");
        let temp = path_for(cache, Path::new("/d"));
        let name = temp.file_name().expect("name");
        assert_eq!(writer_pid(name, &prefix(cache)), Some(std::process::id()));
    }

    #[test]
    fn other_files_are_not_ours() {
        let prefix = prefix(Path::new("msal.cache"));
        for name in [
            "msal.cache",
            "msal.cache.lockfile",
            ".msal.cache.12-xyz.tmp",
            // Hex but short, and long enough but not hex: both halves of the rule count.
            ".msal.cache.12-0123.tmp",
            ".msal.cache.12-xyzxyzxyzxyzxyzx.tmp",
            ".msal.cache.nocae.12-0123456789abcdef.tmp",
            ".other.12-0123456789abcdef.tmp",
        ] {
            assert_eq!(writer_pid(OsStr::new(name), &prefix), None, "{name}");
        }
        assert_eq!(
            writer_pid(OsStr::new(".msal.cache.12-0123456789abcdef.tmp"), &prefix),
            Some(12)
        );
    }

    /// A killed save's temporary file is removed; a running writer's (this process's) and
    /// files that are not ours stay.
    #[cfg(unix)]
    #[test]
    fn the_sweep_removes_only_files_of_writers_that_no_longer_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("msal.cache");
        // A pid that ran and has exited.
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("true runs");
        let dead = child.id();
        child.wait().expect("true exits");
        let orphan = dir
            .path()
            .join(format!(".msal.cache.{dead}-0123456789abcdef.tmp"));
        let ours = path_for(&cache, dir.path());
        // A save in progress in another process that runs: pid 1, which started long
        // before the file was written.
        let live = dir.path().join(".msal.cache.1-0123456789abcdef.tmp");
        let foreign = dir.path().join(".other.1-0123456789abcdef.tmp");
        for file in [&orphan, &ours, &live, &foreign] {
            fs::write(file, b"copy").expect("write");
        }
        remove_orphans(&cache, dir.path());
        assert!(!orphan.exists(), "the killed writer's file is removed");
        assert!(ours.exists(), "this process's file stays");
        assert!(live.exists(), "a running writer's file stays");
        assert!(foreign.exists(), "a file that is not ours stays");
    }
}
