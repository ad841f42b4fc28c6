//! What happens to a stored blob that is not a cache document: it is kept aside, never
//! silently dropped, and the caller goes on with an empty cache.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use super::document::{CorruptCache, TokenCacheDocument};

/// Between the cache path and the time stamp in the name of a kept copy.
const KEPT_INFIX: &str = ".corrupt-";

/// Where the bytes of a corrupt cache are kept aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    cache_path: Option<PathBuf>,
}

impl Quarantine {
    /// Keep corrupt bytes beside the cache: `<cache path>.corrupt-<epoch seconds>`, a new
    /// file of mode 0600 (never replacing an existing one).
    ///
    /// For a keyring backend the cache path is its marker file path: the file lands in the
    /// same owner-only directory.
    pub fn beside(cache_path: impl Into<PathBuf>) -> Self {
        Quarantine {
            cache_path: Some(cache_path.into()),
        }
    }

    /// Whether `file_name` is that of a copy kept by [`Quarantine::keep`]
    /// (`<cache name>.corrupt-<epoch seconds>[-<n>]`).
    pub fn is_kept_copy(file_name: &str) -> bool {
        file_name
            .split_once(KEPT_INFIX)
            .is_some_and(|(cache, stamp)| {
                !cache.is_empty() && stamp.starts_with(|c: char| c.is_ascii_digit())
            })
    }

    /// No place to keep corrupt bytes: a corrupt cache is then left in storage untouched
    /// and the caller must not save over it (see [`Decoded::writable`]).
    pub fn nowhere() -> Self {
        Quarantine { cache_path: None }
    }

    /// Writes `bytes` to a new sidecar file and returns its path.
    pub fn keep(&self, bytes: &[u8]) -> io::Result<PathBuf> {
        let Some(cache_path) = &self.cache_path else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "no quarantine location",
            ));
        };
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut last = None;
        for attempt in 0..100u32 {
            let mut name = cache_path.as_os_str().to_owned();
            name.push(format!("{KEPT_INFIX}{stamp}"));
            if attempt > 0 {
                name.push(format!("-{attempt}"));
            }
            let path = PathBuf::from(name);
            match create_private(&path) {
                Ok(mut file) => {
                    let written = file.write_all(bytes).and_then(|()| file.sync_all());
                    if let Err(e) = written {
                        // A partial copy is worse than none: the original is still in
                        // storage, because the caller saves over it only after `Ok`.
                        let _ = fs::remove_file(&path);
                        return Err(e);
                    }
                    return Ok(path);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free quarantine name")))
    }
}

impl Quarantine {
    /// Moves the file at the cache path aside, under the name [`keep`](Self::keep) gives,
    /// for a persistence whose stored data is that file and cannot be read back (a
    /// ciphertext that does not decrypt: `CorruptData` from `load`). Returns where it
    /// went, or `Ok(None)` when there is nothing to move: no quarantine location, no
    /// file, an empty file or not a regular file (a keyring backend's marker, whose
    /// stored data is elsewhere and is not this function's to move).
    ///
    /// The caller holds the cache lock, so no peer's save is moved aside. The file is
    /// linked under the new name before the cache path is removed: it is never lost.
    pub fn set_aside_stored_file(&self) -> io::Result<Option<PathBuf>> {
        let Some(cache_path) = &self.cache_path else {
            return Ok(None);
        };
        match fs::symlink_metadata(cache_path) {
            Ok(meta) if meta.is_file() && meta.len() > 0 => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for attempt in 0..100u32 {
            let mut name = cache_path.as_os_str().to_owned();
            name.push(format!("{KEPT_INFIX}{stamp}"));
            if attempt > 0 {
                name.push(format!("-{attempt}"));
            }
            let kept = PathBuf::from(name);
            match fs::hard_link(cache_path, &kept) {
                Ok(()) => {
                    fs::remove_file(cache_path)?;
                    return Ok(Some(kept));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("no free quarantine name"))
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> io::Result<fs::File> {
    // On Windows the file inherits the ACL of the user's own cache directory.
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// The outcome of [`decode_or_recover`].
#[derive(Debug)]
pub struct Decoded {
    /// The cache to use: the parsed one, or an empty one after a corrupt blob.
    pub document: TokenCacheDocument,
    /// What was wrong with the stored blob, if anything.
    pub corrupt: Option<CorruptCache>,
    /// Where the corrupt bytes were kept, if they were.
    pub kept_at: Option<PathBuf>,
    /// Whether saving over the stored blob loses nothing: true unless it was corrupt,
    /// non-empty, and could not be kept aside.
    pub writable: bool,
}

/// Parses a loaded blob (`None`: nothing stored) and recovers from a corrupt one.
///
/// - Nothing stored, or a valid document: that document, no warning.
/// - A 0-byte blob: an empty document and a warning; there is nothing to keep aside.
/// - Any other corrupt blob: a warning naming the defect (never the content), the bytes
///   written by `quarantine` to a sidecar file, and an empty document. When they cannot
///   be kept, an error is logged and [`Decoded::writable`] is false: the caller works in
///   memory and leaves the stored blob alone, so nothing is lost.
///
/// Never panics, whatever the bytes.
pub fn decode_or_recover(bytes: Option<&[u8]>, quarantine: &Quarantine) -> Decoded {
    let Some(bytes) = bytes else {
        return Decoded {
            document: TokenCacheDocument::new(),
            corrupt: None,
            kept_at: None,
            writable: true,
        };
    };
    let corrupt = match TokenCacheDocument::parse(bytes) {
        Ok(document) => {
            return Decoded {
                document,
                corrupt: None,
                kept_at: None,
                writable: true,
            };
        }
        Err(corrupt) => corrupt,
    };
    if corrupt == CorruptCache::Empty {
        tracing::warn!(%corrupt, "starting with an empty token cache");
        return Decoded {
            document: TokenCacheDocument::new(),
            corrupt: Some(corrupt),
            kept_at: None,
            writable: true,
        };
    }
    let (kept_at, writable) = match quarantine.keep(bytes) {
        Ok(path) => {
            tracing::warn!(
                %corrupt,
                kept_at = %path.display(),
                len = bytes.len(),
                "the token cache is corrupt; kept its bytes aside and starting with an empty cache"
            );
            (Some(path), true)
        }
        Err(error) => {
            tracing::error!(
                %corrupt,
                %error,
                len = bytes.len(),
                "the token cache is corrupt and could not be kept aside; \
                 using an in-memory cache and leaving the stored one untouched"
            );
            (None, false)
        }
    };
    Decoded {
        document: TokenCacheDocument::new(),
        corrupt: Some(corrupt),
        kept_at,
        writable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_copies_are_recognised_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let quarantine = Quarantine::beside(dir.path().join("msal.cache"));
        for _ in 0..2 {
            let kept = quarantine.keep(b"{").expect("keep");
            let name = kept.file_name().and_then(|n| n.to_str()).expect("utf-8");
            assert!(Quarantine::is_kept_copy(name), "{name}");
        }
        for name in [
            "msal.cache",
            "msal.cache.corrupt-",
            "my.corrupt-cache",
            ".corrupt-1",
        ] {
            assert!(!Quarantine::is_kept_copy(name), "{name}");
        }
    }

    #[test]
    fn corrupt_bytes_are_kept_aside_privately() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("msal.cache");
        let q = Quarantine::beside(&cache);
        let first = decode_or_recover(Some(b"{\"AccessToken\":"), &q);
        let second = decode_or_recover(Some(b"\xff"), &q);
        for decoded in [&first, &second] {
            assert!(decoded.writable);
            assert_eq!(decoded.document, TokenCacheDocument::new());
        }
        let (a, b) = (first.kept_at.expect("kept"), second.kept_at.expect("kept"));
        assert_ne!(a, b, "a second corrupt blob never replaces the first");
        assert_eq!(fs::read(&a).expect("read"), b"{\"AccessToken\":");
        assert_eq!(fs::read(&b).expect("read"), b"\xff");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&a).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn an_unreadable_stored_file_is_moved_aside_whole_and_markers_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("msal.cache");
        let q = Quarantine::beside(&cache);
        assert_eq!(q.set_aside_stored_file().expect("no file"), None);
        fs::write(&cache, b"").expect("marker");
        assert_eq!(q.set_aside_stored_file().expect("empty"), None);
        assert!(cache.exists(), "an empty marker stays");
        fs::write(&cache, b"ciphertext").expect("write");
        let first = q.set_aside_stored_file().expect("move").expect("moved");
        assert!(!cache.exists());
        fs::write(&cache, b"again").expect("write");
        let second = q.set_aside_stored_file().expect("move").expect("moved");
        assert_ne!(first, second, "never replaces a kept copy");
        assert_eq!(fs::read(&first).expect("read"), b"ciphertext");
        assert_eq!(fs::read(&second).expect("read"), b"again");
        assert_eq!(
            Quarantine::nowhere().set_aside_stored_file().expect("ok"),
            None
        );
    }

    #[test]
    fn without_a_place_to_keep_it_the_blob_is_not_writable() {
        let decoded = decode_or_recover(Some(b"nope"), &Quarantine::nowhere());
        assert!(!decoded.writable);
        assert!(decoded.corrupt.is_some());
        let empty = decode_or_recover(Some(b""), &Quarantine::nowhere());
        assert!(empty.writable, "0 bytes: nothing to lose");
    }
}
