//! `EncryptedFilePersistence`, the platform-independent part of the Windows DPAPI backend,
//! over a test cipher: the file holds exactly the cipher's output, an empty file is an
//! empty cache, undecryptable contents are `CorruptData` and left in place, and a failed
//! encryption changes nothing.

use std::{
    fs,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use identity_cache_persistence::{
    BoxError, CachePersistence, ErrorKind,
    platform::{Cipher, EncryptedFilePersistence},
};

/// A toy cipher with DPAPI's shape: a fixed header, the bytes scrambled, and a check byte,
/// so that damaged or foreign bytes fail to decrypt. Not encryption; enough to tell
/// plaintext from ciphertext on disk.
#[derive(Debug, Default, Clone)]
struct TestCipher {
    decrypts: Arc<AtomicUsize>,
    refuse_encrypt: Arc<AtomicBool>,
}

const HEADER: &[u8] = b"TC01";

impl Cipher for TestCipher {
    fn backend(&self) -> &str {
        "test-cipher-file"
    }
    fn scheme(&self) -> String {
        "test cipher".into()
    }
    fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, BoxError> {
        if self.refuse_encrypt.load(Ordering::SeqCst) {
            return Err("the test cipher refuses".into());
        }
        let mut out = HEADER.to_vec();
        out.extend(
            plaintext
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ 0xA5 ^ (i as u8)),
        );
        out.push(plaintext.iter().fold(0u8, |s, b| s.wrapping_add(*b)));
        Ok(out)
    }
    fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, BoxError> {
        self.decrypts.fetch_add(1, Ordering::SeqCst);
        let body = ciphertext
            .strip_prefix(HEADER)
            .and_then(|rest| rest.split_last())
            .ok_or("not a test-cipher blob")?;
        let (check, scrambled) = body;
        let plain: Vec<u8> = scrambled
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ 0xA5 ^ (i as u8))
            .collect();
        if plain.iter().fold(0u8, |s, b| s.wrapping_add(*b)) != *check {
            return Err("bad check byte".into());
        }
        Ok(plain)
    }
}

fn setup() -> (
    tempfile::TempDir,
    TestCipher,
    EncryptedFilePersistence<TestCipher>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cipher = TestCipher::default();
    let p =
        EncryptedFilePersistence::new(dir.path().join("msal.cache"), cipher.clone()).expect("new");
    (dir, cipher, p)
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
fn the_file_holds_exactly_the_ciphers_output() {
    let (dir, cipher, p) = setup();
    let blob = b"{\"AccessToken\":{\"k\":{\"secret\":\"plaintext-token\"}}}";
    p.save(blob).expect("save");
    let on_disk = fs::read(dir.path().join("msal.cache")).expect("read");
    assert_eq!(
        on_disk,
        cipher.encrypt(blob).expect("encrypt"),
        "no header of ours"
    );
    assert!(
        !on_disk.windows(15).any(|w| w == b"plaintext-token"),
        "no plaintext on disk"
    );
    assert_eq!(p.load().expect("load").as_deref(), Some(&blob[..]));
}

#[test]
fn a_file_written_by_another_sdk_is_read() {
    let (dir, cipher, p) = setup();
    let sealed = cipher.encrypt(b"{\"Account\":{}}").expect("encrypt");
    fs::write(dir.path().join("msal.cache"), &sealed).expect("write");
    assert_eq!(
        p.load().expect("load").as_deref(),
        Some(&b"{\"Account\":{}}"[..])
    );
}

#[test]
fn absent_is_none_and_an_empty_file_is_an_empty_cache() {
    let (dir, cipher, p) = setup();
    assert_eq!(p.load().expect("load absent"), None);
    assert_eq!(p.version().expect("version absent"), None);

    p.save(b"").expect("save empty");
    assert_eq!(
        fs::read(dir.path().join("msal.cache")).expect("read"),
        cipher.encrypt(b"").expect("encrypt"),
        "the empty blob is encrypted too, so every SDK can read it"
    );
    assert_eq!(
        p.load().expect("load empty"),
        Some(vec![]),
        "empty is not absent"
    );
    assert!(p.version().expect("version").is_some());
    let decrypts = cipher.decrypts.load(Ordering::SeqCst);

    // An empty file written by someone else (MSAL.NET writes one for an empty cache).
    fs::write(dir.path().join("msal.cache"), b"").expect("write");
    assert_eq!(p.load().expect("load empty"), Some(vec![]));
    assert_eq!(
        cipher.decrypts.load(Ordering::SeqCst),
        decrypts,
        "an empty file is not decrypted"
    );
}

#[test]
fn undecryptable_contents_are_corrupt_data_and_left_in_place() {
    let (dir, _cipher, p) = setup();
    p.save(b"the real cache").expect("save");
    let path = dir.path().join("msal.cache");
    let mut damaged = fs::read(&path).expect("read");
    let last = damaged.len() - 1;
    damaged[last] ^= 0xFF;
    fs::write(&path, &damaged).expect("damage");

    let err = p.load().expect_err("damaged");
    assert_eq!(err.kind(), ErrorKind::CorruptData);
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("left as it is"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(
        fs::read(&path).expect("read"),
        damaged,
        "left byte for byte"
    );
    assert!(p.version().expect("version").is_some(), "still there");

    // Not a ciphertext at all (written by a plaintext fallback, say).
    fs::write(&path, b"{\"plain\":true}").expect("write");
    assert_eq!(
        p.load().expect_err("plaintext").kind(),
        ErrorKind::CorruptData
    );
    assert_eq!(fs::read(&path).expect("read"), b"{\"plain\":true}");

    // A save replaces it as usual.
    p.save(b"fresh").expect("save over it");
    assert_eq!(p.load().expect("load").as_deref(), Some(&b"fresh"[..]));
}

#[test]
fn a_failed_encryption_changes_nothing() {
    let (dir, cipher, p) = setup();
    p.save(b"previous").expect("save");
    let token = p.version().expect("version");
    cipher.refuse_encrypt.store(true, Ordering::SeqCst);
    let err = p.save(b"new secret data").expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Other);
    assert!(!err.to_string().contains("new secret data"), "{err}");
    assert!(err.to_string().contains("test cipher"), "{err}");
    assert_eq!(p.version().expect("version"), token);
    assert_eq!(p.load().expect("load").as_deref(), Some(&b"previous"[..]));
    assert_eq!(listing(dir.path()), ["msal.cache"], "no temporary files");
}

#[test]
fn change_token_lock_and_delete_are_the_files() {
    let (dir, cipher, p) = setup();
    let other = EncryptedFilePersistence::new(dir.path().join("msal.cache"), cipher).expect("new");
    let mut seen = Vec::new();
    for _ in 0..10 {
        p.save(b"same bytes").expect("save");
        let token = other.version().expect("version").expect("token");
        assert!(!seen.contains(&token), "token {token} seen before");
        seen.push(token);
    }
    let guard = p.lock(Duration::from_secs(5)).expect("lock");
    assert!(dir.path().join("msal.cache.lockfile").exists());
    assert_eq!(
        other.lock(Duration::ZERO).expect_err("held").kind(),
        ErrorKind::LockTimeout
    );
    guard.release().expect("release");
    assert!(p.delete().expect("delete"));
    assert_eq!(other.load().expect("load"), None);
    assert_eq!(other.version().expect("version"), None);
    assert!(!p.delete().expect("delete again"));
}

#[test]
fn describe_declares_encryption_and_names_the_scheme() {
    let (dir, _cipher, p) = setup();
    let d = p.describe();
    assert_eq!(d.backend, "test-cipher-file");
    assert!(d.capabilities.encrypts_at_rest);
    assert!(d.capabilities.exclusive_lock && d.capabilities.change_detection);
    assert!(d.location.contains("test cipher"), "{}", d.location);
    assert!(
        d.location
            .contains(&dir.path().join("msal.cache").display().to_string()),
        "{}",
        d.location
    );
    assert_eq!(p.path(), dir.path().join("msal.cache"));
}

#[test]
fn the_probe_round_trips_in_memory_only() {
    let (dir, cipher, p) = setup();
    p.validate().expect("usable");
    assert!(listing(dir.path()).is_empty(), "no file written");

    cipher.refuse_encrypt.store(true, Ordering::SeqCst);
    assert_eq!(p.validate().expect_err("refused").kind(), ErrorKind::Other);

    /// Decrypts to something else: a broken cipher.
    #[derive(Debug)]
    struct Lossy;
    impl Cipher for Lossy {
        fn backend(&self) -> &str {
            "lossy"
        }
        fn scheme(&self) -> String {
            "lossy".into()
        }
        fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, BoxError> {
            Ok(plaintext.to_vec())
        }
        fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, BoxError> {
            Ok(ciphertext[1..].to_vec())
        }
    }
    let lossy = EncryptedFilePersistence::new(dir.path().join("x"), Lossy).expect("new");
    assert_eq!(
        lossy.validate().expect_err("lossy").kind(),
        ErrorKind::Other
    );
}
