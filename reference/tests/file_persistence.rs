//! `FilePersistence` on real files: round trips, modes, atomic replacement, change tokens,
//! and typed errors that leave the stored data alone.
//!
//! Unix only: modes, FIFOs, `chattr` and tmpfs are how these faults are made for real.
#![cfg(unix)]

include!("skip/report.rs");

use std::{
    collections::HashSet,
    fs,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::Path,
};

use identity_cache_persistence::{CachePersistence, ErrorKind, FilePersistence};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").mode() & 0o777
}

/// File names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn absent_empty_and_binary_blobs_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = FilePersistence::new(dir.path().join("msal.cache")).expect("new");
    assert_eq!(p.load().expect("load absent"), None);
    assert_eq!(p.version().expect("version absent"), None);

    p.save(b"").expect("save empty");
    assert_eq!(
        p.load().expect("load empty"),
        Some(vec![]),
        "empty is not absent"
    );

    let binary: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    p.save(&binary).expect("save binary");
    assert_eq!(p.load().expect("load binary"), Some(binary));
}

#[test]
fn delete_reports_whether_something_was_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = FilePersistence::new(dir.path().join("msal.cache")).expect("new");
    assert!(!p.delete().expect("delete absent"));
    p.save(b"{}").expect("save");
    assert!(p.delete().expect("delete present"));
    assert_eq!(p.load().expect("load"), None);
    assert!(!p.delete().expect("delete again"));
    p.save(b"again").expect("save after delete");
    assert_eq!(p.load().expect("load").as_deref(), Some(&b"again"[..]));
}

#[test]
fn files_are_0600_and_created_directories_0700() {
    // umask is process-wide; 022 is what users typically have, and the umask under which a
    // careless 0644 would show. SAFETY: umask has no memory-safety preconditions.
    unsafe { libc::umask(0o022) };
    let dir = tempfile::tempdir().expect("tempdir");
    let cache_dir = dir.path().join("home/.IdentityService");
    let p = FilePersistence::new(cache_dir.join("msal.cache")).expect("new");
    p.save(b"{}").expect("save");
    assert_eq!(mode(&cache_dir.join("msal.cache")), 0o600);
    assert_eq!(mode(&cache_dir), 0o700);
    assert_eq!(mode(&dir.path().join("home")), 0o700);

    let guard = p.lock(std::time::Duration::from_secs(5)).expect("lock");
    assert_eq!(mode(&cache_dir.join("msal.cache.lockfile")), 0o600);
    drop(guard);
}

#[test]
fn a_world_readable_cache_file_is_replaced_by_a_private_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msal.cache");
    fs::write(&path, b"{}").expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    FilePersistence::new(&path)
        .expect("new")
        .save(b"{\"a\":1}")
        .expect("save");
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn save_replaces_the_file_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = FilePersistence::new(dir.path().join("msal.cache")).expect("new");
    for i in 0..20 {
        p.save(format!("blob {i}").as_bytes()).expect("save");
    }
    assert_eq!(listing(dir.path()), vec!["msal.cache"]);
}

#[test]
fn change_token_moves_on_every_same_size_save() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msal.cache");
    let writer = FilePersistence::new(&path).expect("new");
    let observer = FilePersistence::new(&path).expect("new");
    let mut seen = HashSet::new();
    for i in 0..500u32 {
        // Same size every time, faster than any file-system clock ticks.
        writer.save(&i.to_be_bytes()).expect("save");
        let token = observer.version().expect("version").expect("present");
        assert!(seen.insert(token), "token repeated after save {i}");
        assert_eq!(
            observer.version().expect("version").expect("present"),
            writer.version().expect("version").expect("present"),
            "token is stable without a save"
        );
    }
    writer.delete().expect("delete");
    assert_eq!(observer.version().expect("version"), None);
}

#[test]
fn a_directory_at_the_cache_path_is_corrupt_data_and_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msal.cache");
    fs::create_dir(&path).expect("mkdir");
    fs::write(path.join("inside"), b"keep").expect("write");
    let p = FilePersistence::new(&path).expect("new");

    let err = p.load().expect_err("a directory is not a cache");
    assert_eq!(err.kind(), ErrorKind::CorruptData);
    assert!(err.to_string().contains("not a regular file"), "{err}");

    let err = p.save(b"new").expect_err("cannot replace a directory");
    assert_ne!(err.kind(), ErrorKind::CorruptData);
    assert_eq!(fs::read(path.join("inside")).expect("read"), b"keep");
    assert_eq!(
        listing(dir.path()),
        vec!["msal.cache"],
        "the failed save left a temporary file"
    );
}

#[test]
fn a_fifo_at_the_cache_path_does_not_hang_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msal.cache");
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("cstring");
    // SAFETY: c_path is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let err = FilePersistence::new(&path)
        .expect("new")
        .load()
        .expect_err("a FIFO is not a cache");
    assert_eq!(err.kind(), ErrorKind::CorruptData);
    assert!(
        fs::symlink_metadata(&path)
            .expect("still there")
            .file_type()
            .is_fifo()
    );
}

#[test]
fn a_parent_that_is_a_regular_file_is_storage_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join(".IdentityService");
    fs::write(&blocker, b"not a directory").expect("write");
    let p = FilePersistence::new(blocker.join("msal.cache")).expect("new");
    let err = p.save(b"{}").expect_err("cannot save under a file");
    assert_eq!(err.kind(), ErrorKind::StorageUnavailable, "{err}");
    assert_eq!(fs::read(&blocker).expect("read"), b"not a directory");
}

#[test]
fn an_immutable_cache_file_is_access_denied_and_keeps_its_content() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msal.cache");
    let p = FilePersistence::new(&path).expect("new");
    p.save(b"old").expect("save");
    // Tests run as root, so modes do not deny anything; the immutable attribute does.
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !chattr("+i") {
        assert!(
            std::env::var_os("CI").is_none(),
            "chattr +i must work on CI (root on a file system with attributes)"
        );
        report_skip(
            "an_immutable_cache_file_is_access_denied_and_keeps_its_content",
            "chattr +i is not available here (e2fsprogs, as root on a file system with attributes)",
        );
        return;
    }
    let result = p.save(b"new");
    chattr("-i");
    let err = result.expect_err("the directory is immutable");
    assert_eq!(err.kind(), ErrorKind::AccessDenied, "{err}");
    assert_eq!(p.load().expect("load").as_deref(), Some(&b"old"[..]));
    assert_eq!(listing(dir.path()), vec!["msal.cache"]);
}

#[test]
fn a_full_disk_is_storage_full_and_keeps_the_old_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mount_point = dir.path().join("small");
    fs::create_dir(&mount_point).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mount_point)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        assert!(
            std::env::var_os("CI").is_none(),
            "mounting a small tmpfs must work on CI (root)"
        );
        report_skip(
            "a_full_disk_is_storage_full_and_keeps_the_old_blob",
            "cannot mount a tmpfs here (needs root)",
        );
        return;
    }
    let p = FilePersistence::new(mount_point.join("msal.cache")).expect("new");
    let result = (|| {
        p.save(&[b'a'; 20_000])?;
        p.save(&[b'b'; 100_000])
    })();
    let after = p.load();
    let listing_after = listing(&mount_point);
    let _ = std::process::Command::new("umount")
        .arg(&mount_point)
        .status();

    let err = result.expect_err("100 KB does not fit in 64 KiB");
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
    assert_eq!(after.expect("load").expect("present"), vec![b'a'; 20_000]);
    assert_eq!(
        listing_after,
        vec!["msal.cache"],
        "temporary file left behind"
    );
}

#[test]
fn debug_and_description_name_the_path_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msal.cache");
    let p = FilePersistence::new(&path).expect("new");
    p.save(b"SECRET-TOKEN-VALUE").expect("save");
    let debug = format!("{p:?}");
    assert!(!debug.contains("SECRET"), "{debug}");
    let description = p.describe();
    assert_eq!(description.backend, "file");
    assert_eq!(description.location, path.display().to_string());
    assert!(!description.capabilities.encrypts_at_rest);
    assert!(description.capabilities.exclusive_lock);
}
