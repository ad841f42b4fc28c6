//! [`FileFactory`]: the reference [`FilePersistence`] as a suite factory, with real fault
//! hooks that work as root.
//!
//! - **corrupt data**: a directory where the cache file should be (not a regular file);
//! - **faults**: [`DirFaults`] on the namespace directory (made unreachable, immutable, or
//!   a full tmpfs).

use std::{
    fs,
    path::{Path, PathBuf},
};

use identity_cache_persistence::{CachePersistence, Error, FilePersistence, Result, validate_name};

use crate::{
    dir_faults::DirFaults,
    factory::{Fault, Namespace, PluginFactory},
};

/// Makes a [`FilePersistence`] at `<ns.dir>/<ns.name>`, after the name check the options
/// constructor applies.
#[derive(Debug, Default)]
pub struct FileFactory {
    faults: DirFaults,
}

impl FileFactory {
    /// A factory for the reference file plugin.
    pub fn new() -> Self {
        FileFactory::default()
    }

    fn path(ns: &Namespace) -> PathBuf {
        ns.dir.join(&ns.name)
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
        self.faults.clear_any(&ns.dir)?;
        self.create(ns)?.delete().map(|_| ())
    }

    fn corrupt_stored_data(&self, ns: &Namespace) -> Result<()> {
        let path = Self::path(ns);
        remove_if_present(&path)?;
        fs::create_dir(&path).map_err(|e| Error::io("create a directory at", &path, e))
    }

    fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.faults.inject(&ns.dir, fault)
    }

    fn clear_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.faults.clear(&ns.dir, fault)
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("inspect", path, e)),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(|e| Error::io("remove", path, e)),
        Ok(_) => fs::remove_file(path).map_err(|e| Error::io("remove", path, e)),
    }
}
