//! [`FileFactory`]: the reference [`FilePersistence`] as a suite factory, with real fault
//! hooks that work as root.
//!
//! Tests run as root, so read-only modes do not make writes fail. The faults are made the
//! way the OS really produces them:
//! - **corrupt data**: a directory where the cache file should be (not a regular file);
//! - **storage unavailable**: the namespace directory moved aside and a regular file put
//!   in its place, so the cache path runs through a file (`ENOTDIR`);
//! - **access denied**: the namespace directory made immutable (`chattr +i`, which stops
//!   root too: `EPERM`); when not root, mode 0500 (`EACCES`);
//! - **disk full**: a 64 KiB tmpfs mounted over the namespace directory, holding a copy of
//!   its files, and filled up (`ENOSPC`). Needs root and `mount`; otherwise NotSupported.
//!
//! Clearing a fault restores the storage as the plugin left it during the fault (for the
//! tmpfs: its files are copied back), so damage done under the fault stays visible.

use std::{
    collections::HashMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
};

use identity_cache_persistence::{
    CachePersistence, Error, ErrorKind, FilePersistence, Result, validate_name,
};

use crate::factory::{Fault, Namespace, PluginFactory};

/// Makes a [`FilePersistence`] at `<ns.dir>/<ns.name>`, after the name check the options
/// constructor applies.
#[derive(Debug, Default)]
pub struct FileFactory {
    /// Namespace directories with a fault in force, to undo in `cleanup` if a case could not.
    active: Mutex<HashMap<PathBuf, Fault>>,
}

impl FileFactory {
    /// A factory for the reference file plugin.
    pub fn new() -> Self {
        FileFactory::default()
    }

    fn path(ns: &Namespace) -> PathBuf {
        ns.dir.join(&ns.name)
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Fault>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PluginFactory for FileFactory {
    fn label(&self) -> String {
        "file".into()
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        validate_name(&ns.name)?;
        Ok(Box::new(FilePersistence::new(Self::path(ns))?))
    }

    fn cleanup(&self, ns: &Namespace) -> Result<()> {
        let fault = self.active().remove(&ns.dir);
        if let Some(fault) = fault {
            undo(ns, fault)?;
        }
        self.create(ns)?.delete().map(|_| ())
    }

    fn corrupt_stored_data(&self, ns: &Namespace) -> Result<()> {
        let path = Self::path(ns);
        remove_if_present(&path)?;
        fs::create_dir(&path).map_err(|e| Error::io("create a directory at", &path, e))
    }

    fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        let mut active = self.active();
        if active.contains_key(&ns.dir) {
            return Err(Error::new(
                ErrorKind::Other,
                "a fault is already in force in this namespace",
            ));
        }
        match fault {
            Fault::StorageUnavailable => {
                let aside = aside(&ns.dir, "unavailable");
                fs::rename(&ns.dir, &aside).map_err(|e| Error::io("move aside", &ns.dir, e))?;
                fs::write(&ns.dir, b"not a directory")
                    .map_err(|e| Error::io("create a file at", &ns.dir, e))?;
            }
            Fault::AccessDenied => deny_access(&ns.dir)?,
            Fault::DiskFull => fill_disk(&ns.dir)?,
        }
        active.insert(ns.dir.clone(), fault);
        Ok(())
    }

    fn clear_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        let mut active = self.active();
        if active.get(&ns.dir) != Some(&fault) {
            return Err(Error::new(
                ErrorKind::Other,
                format!("{} is not in force", fault.as_str()),
            ));
        }
        undo(ns, fault)?;
        active.remove(&ns.dir);
        Ok(())
    }
}

fn undo(ns: &Namespace, fault: Fault) -> Result<()> {
    match fault {
        Fault::StorageUnavailable => {
            let aside = aside(&ns.dir, "unavailable");
            fs::remove_file(&ns.dir).map_err(|e| Error::io("remove", &ns.dir, e))?;
            fs::rename(&aside, &ns.dir).map_err(|e| Error::io("move back", &aside, e))
        }
        Fault::AccessDenied => allow_access(&ns.dir),
        Fault::DiskFull => empty_disk(&ns.dir),
    }
}

fn aside(dir: &Path, why: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_os_string();
    name.push(format!(".{why}"));
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("inspect", path, e)),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(|e| Error::io("remove", path, e)),
        Ok(_) => fs::remove_file(path).map_err(|e| Error::io("remove", path, e)),
    }
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
        "file factory",
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

/// Mounts a small tmpfs over `dir` with a copy of its files, then fills it.
fn fill_disk(dir: &Path) -> Result<()> {
    if !cfg!(target_os = "linux") || !is_root() {
        return Err(Error::not_supported(
            "file factory",
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
    run(
        "mount",
        &[
            "-t".as_ref(),
            "tmpfs".as_ref(),
            "-o".as_ref(),
            "size=64k,mode=0700".as_ref(),
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
    Ok(())
}

/// Copies the tmpfs's files (minus the filler) back to a plain directory and unmounts it.
fn empty_disk(dir: &Path) -> Result<()> {
    let _ = fs::remove_file(dir.join(FILLER));
    let after = aside(dir, "after-full");
    crate::ctx::create_private_dir(&after).map_err(|e| Error::io("create", &after, e))?;
    copy_files(dir, &after)?;
    run("umount", &[dir.as_os_str()])?;
    fs::remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))?;
    fs::rename(&after, dir).map_err(|e| Error::io("move back", &after, e))
}
