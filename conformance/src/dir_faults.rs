//! [`DirFaults`]: real storage faults of a plugin whose storage lives in one directory
//! (the namespace directory), provoked from outside the plugin with no hook in it.
//!
//! Tests run as root, so read-only modes do not make writes fail. The faults are made the
//! way the OS really produces them:
//! - **storage unavailable**: the directory moved aside and a regular file put in its
//!   place, so every path under it runs through a file (`ENOTDIR`);
//! - **access denied**: the directory made immutable (`chattr +i`, which stops root too:
//!   `EPERM`); when not root, mode 0500 (`EACCES`);
//! - **disk full**: a 64 KiB tmpfs mounted over the directory, holding a copy of its
//!   files, and filled up (`ENOSPC`). Needs root and `mount`; otherwise NotSupported.
//!   [`exhausting_inodes`](DirFaults::exhausting_inodes) also uses up its inodes, so that
//!   creating even an empty file fails, for plugins that write no data there (markers).
//!
//! [`damage_files`] damages what is stored there, for the corruption cases.
//!
//! Clearing a fault restores the directory as the plugin left it during the fault (for the
//! tmpfs: its files are copied back), so damage done under the fault stays visible.

use std::{
    collections::HashMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

use identity_cache_persistence::{Error, ErrorKind, Result};

use crate::factory::Fault;

/// The faults in force, by directory, so that a case that could not clear its fault has
/// it cleared by the factory's `cleanup`.
#[derive(Debug, Default)]
pub struct DirFaults {
    active: Mutex<HashMap<PathBuf, Fault>>,
    inodes: bool,
}

impl DirFaults {
    /// Faults of directories, a full disk being out of data blocks.
    pub fn new() -> Self {
        DirFaults::default()
    }

    /// A full disk is also out of inodes: no file can be created, not even an empty one.
    pub fn exhausting_inodes(self) -> Self {
        DirFaults {
            inodes: true,
            ..self
        }
    }

    /// Provokes `fault` in `dir` until [`clear`](Self::clear). One fault per directory at
    /// a time.
    pub fn inject(&self, dir: &Path, fault: Fault) -> Result<()> {
        let mut active = self.active();
        if active.contains_key(dir) {
            return Err(Error::new(
                ErrorKind::Other,
                "a fault is already in force in this namespace",
            ));
        }
        match fault {
            Fault::StorageUnavailable => {
                let aside = aside(dir, "unavailable");
                fs::rename(dir, &aside).map_err(|e| Error::io("move aside", dir, e))?;
                fs::write(dir, b"not a directory")
                    .map_err(|e| Error::io("create a file at", dir, e))?;
            }
            Fault::AccessDenied => deny_access(dir)?,
            Fault::DiskFull => fill_disk(dir, self.inodes)?,
        }
        active.insert(dir.to_owned(), fault);
        Ok(())
    }

    /// Undoes `fault`, which must be in force in `dir`.
    pub fn clear(&self, dir: &Path, fault: Fault) -> Result<()> {
        let mut active = self.active();
        if active.get(dir) != Some(&fault) {
            return Err(Error::new(
                ErrorKind::Other,
                format!("{} is not in force", fault.as_str()),
            ));
        }
        undo(dir, fault)?;
        active.remove(dir);
        Ok(())
    }

    /// Undoes whatever fault is still in force in `dir`, if any: for `cleanup`.
    pub fn clear_any(&self, dir: &Path) -> Result<()> {
        let fault = self.active().remove(dir);
        match fault {
            Some(fault) => undo(dir, fault),
            None => Ok(()),
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Fault>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Damages what a plugin stored under `dir` so that no plugin can read it back as a blob:
/// every non-empty regular file under it (recursively) is replaced by an empty directory
/// of the same name. Returns how many files were damaged.
///
/// A directory, unlike changed bytes, is unreadable to every plugin: one that stores the
/// blob as plain bytes could not tell changed bytes from a blob it was given. Empty files
/// (markers) carry no data and are left.
pub fn damage_files(dir: &Path) -> Result<usize> {
    let mut damaged = 0;
    let entries = fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| Error::io("inspect", &path, e))?;
        if meta.is_dir() {
            damaged += damage_files(&path)?;
        } else if meta.is_file() && meta.len() > 0 {
            fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
            fs::create_dir(&path).map_err(|e| Error::io("create a directory at", &path, e))?;
            damaged += 1;
        }
    }
    Ok(damaged)
}

fn undo(dir: &Path, fault: Fault) -> Result<()> {
    match fault {
        Fault::StorageUnavailable => {
            let aside = aside(dir, "unavailable");
            fs::remove_file(dir).map_err(|e| Error::io("remove", dir, e))?;
            fs::rename(&aside, dir).map_err(|e| Error::io("move back", &aside, e))
        }
        Fault::AccessDenied => allow_access(dir),
        Fault::DiskFull => empty_disk(dir),
    }
}

fn aside(dir: &Path, why: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_os_string();
    name.push(format!(".{why}"));
    PathBuf::from(name)
}

fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid(2) cannot fail and touches no memory.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Runs a command; `NotSupported` naming it when it cannot run or fails.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
    let output = Command::new(program).args(args).output().map_err(|e| {
        Error::with_source(ErrorKind::NotSupported, format!("cannot run {program}"), e)
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::NotSupported,
            format!(
                "{program} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ))
    }
}

fn deny_access(dir: &Path) -> Result<()> {
    if is_root() {
        // Root ignores modes; the immutable attribute stops root as well.
        run("chattr", &["+i".as_ref(), dir.as_os_str()])
    } else {
        set_mode(dir, 0o500)
    }
}

fn allow_access(dir: &Path) -> Result<()> {
    if is_root() {
        run("chattr", &["-i".as_ref(), dir.as_os_str()])
    } else {
        set_mode(dir, 0o700)
    }
}

#[cfg(unix)]
fn set_mode(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", dir, e))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) -> Result<()> {
    Err(Error::not_supported(
        "directory faults",
        "access denied faults on this OS",
    ))
}

/// Copies the regular files directly in `from` to `to` (plugins here keep no subdirectories).
fn copy_files(from: &Path, to: &Path) -> Result<()> {
    let entries = fs::read_dir(from).map_err(|e| Error::io("list", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", from, e))?;
        let kind = entry
            .file_type()
            .map_err(|e| Error::io("inspect", &entry.path(), e))?;
        let target = to.join(entry.file_name());
        if kind.is_file() {
            fs::copy(entry.path(), &target).map_err(|e| Error::io("copy", &entry.path(), e))?;
        } else if kind.is_dir() {
            fs::create_dir(&target).map_err(|e| Error::io("create", &target, e))?;
        }
    }
    Ok(())
}

const FILLER: &str = ".conformance-filler";

/// Mounts a small tmpfs over `dir` with a copy of its files, then fills it (and, with
/// `inodes`, uses up its inodes).
fn fill_disk(dir: &Path, inodes: bool) -> Result<()> {
    if !cfg!(target_os = "linux") || !is_root() {
        return Err(Error::not_supported(
            "directory faults",
            "disk full faults (needs root on Linux to mount a tmpfs)",
        ));
    }
    let staging = aside(dir, "before-full");
    fs::rename(dir, &staging).map_err(|e| Error::io("move aside", dir, e))?;
    let restore = |e: Error| {
        let _ = run("umount", &[dir.as_os_str()]);
        let _ = fs::remove_dir(dir);
        let _ = fs::rename(&staging, dir);
        e
    };
    crate::ctx::create_private_dir(dir).map_err(|e| restore(Error::io("create", dir, e)))?;
    // 64 inodes: the copied files and the fillers fit, and are used up in a moment.
    let options = if inodes {
        "size=64k,nr_inodes=64,mode=0700"
    } else {
        "size=64k,mode=0700"
    };
    run(
        "mount",
        &[
            "-t".as_ref(),
            "tmpfs".as_ref(),
            "-o".as_ref(),
            options.as_ref(),
            "tmpfs".as_ref(),
            dir.as_os_str(),
        ],
    )
    .map_err(restore)?;
    copy_files(&staging, dir).map_err(restore)?;
    fs::remove_dir_all(&staging).map_err(|e| Error::io("remove", &staging, e))?;
    let filler = dir.join(FILLER);
    let mut file = fs::File::create(&filler).map_err(|e| Error::io("create", &filler, e))?;
    let chunk = [0u8; 4096];
    loop {
        match file.write_all(&chunk).and_then(|()| file.sync_all()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => return Err(Error::io("fill", &filler, e)),
        }
    }
    // A few bytes may be left in a partial block; eat them byte by byte.
    while file.write_all(&[0]).and_then(|()| file.sync_all()).is_ok() {}
    if inodes {
        // The tmpfs has few inodes (`nr_inodes` below): empty files take the rest.
        for n in 0.. {
            let extra = dir.join(format!("{FILLER}-{n}"));
            match fs::File::create(&extra) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => return Err(Error::io("create", &extra, e)),
            }
        }
    }
    Ok(())
}

/// Copies the tmpfs's files (minus the fillers) back to a plain directory and unmounts it.
fn empty_disk(dir: &Path) -> Result<()> {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(FILLER) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    let after = aside(dir, "after-full");
    crate::ctx::create_private_dir(&after).map_err(|e| Error::io("create", &after, e))?;
    copy_files(dir, &after)?;
    run("umount", &[dir.as_os_str()])?;
    fs::remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))?;
    fs::rename(&after, dir).map_err(|e| Error::io("move back", &after, e))
}
