//! Whether a path still names the file we hold open.
//!
//! Both unlinks of the lock protocol (our release, and the removal of a stale file) go
//! through [`same_file`] first: the path is only removed when it names the very file whose
//! OS lock we hold. Holding the old file open is what makes the check sound on Unix: its
//! inode number cannot be given to a new file while we keep it open.

use std::{fs::File, io, path::Path};

/// `Ok(true)` when `path` names `file`; `Ok(false)` when it names something else or
/// nothing.
///
/// - Unix: device and inode numbers of `lstat(path)` and `fstat(file)` are equal. A
///   symlink at `path` is never our file: our lock files are created with `O_EXCL`, which
///   does not follow symlinks.
/// - Elsewhere (Windows, std only, which does not expose file indexes on stable): size,
///   modification and creation times are equal. Creation times have 100 ns resolution, so
///   two lock files created apart are told apart; this is a heuristic, documented as such.
pub(super) fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    let at_path = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let held = file.metadata()?;
    Ok(imp::same(&held, &at_path))
}

#[cfg(unix)]
mod imp {
    use std::{fs::Metadata, os::unix::fs::MetadataExt};

    pub(super) fn same(a: &Metadata, b: &Metadata) -> bool {
        a.dev() == b.dev() && a.ino() == b.ino()
    }
}

#[cfg(not(unix))]
mod imp {
    use std::fs::Metadata;

    pub(super) fn same(a: &Metadata, b: &Metadata) -> bool {
        b.is_file()
            && a.len() == b.len()
            && a.modified().ok() == b.modified().ok()
            && a.created().ok() == b.created().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_held_file_from_a_replacement() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("x.lockfile");
        let held = File::create(&path)?;
        assert!(same_file(&held, &path)?);
        std::fs::remove_file(&path)?;
        assert!(!same_file(&held, &path)?);
        let _other = File::create(&path)?;
        assert!(!same_file(&held, &path)?);
        Ok(())
    }
}
