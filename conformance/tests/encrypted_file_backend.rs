//! The whole suite against `EncryptedFilePersistence`, the platform-independent part of
//! the Windows DPAPI backend, over a test cipher
//! (`cargo test -p conformance --test encrypted_file_backend -- faults::`).
//!
//! Faults are the file plugin's (the same files, written the same way); damaged data is
//! bytes that do not decrypt.

use std::{fs, path::PathBuf};

use conformance::{Fault, FileFactory, Namespace, PluginFactory};
use identity_cache_persistence::{
    BoxError, CachePersistence, Error, Result,
    platform::{Cipher, EncryptedFilePersistence},
    validate_name,
};

/// A toy cipher with DPAPI's shape: a header, the bytes scrambled, a check byte, so that
/// damaged or foreign bytes fail to decrypt. Not encryption; enough that no plaintext
/// reaches the disk.
#[derive(Debug, Clone, Copy)]
struct TestCipher;

const HEADER: &[u8] = b"TC01";

fn scramble(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    bytes
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ 0xA5 ^ (i as u8).rotate_left(3))
}

fn check_byte(plain: &[u8]) -> u8 {
    plain.iter().fold(0x5Au8, |s, b| s.rotate_left(1) ^ b)
}

impl Cipher for TestCipher {
    fn backend(&self) -> &str {
        "encrypted-file"
    }

    fn scheme(&self) -> String {
        "test cipher".into()
    }

    fn encrypt(&self, plaintext: &[u8]) -> std::result::Result<Vec<u8>, BoxError> {
        let mut out = HEADER.to_vec();
        out.extend(scramble(plaintext));
        out.push(check_byte(plaintext));
        Ok(out)
    }

    fn decrypt(&self, ciphertext: &[u8]) -> std::result::Result<Vec<u8>, BoxError> {
        let (check, scrambled) = ciphertext
            .strip_prefix(HEADER)
            .and_then(<[u8]>::split_last)
            .ok_or("not a test-cipher blob")?;
        let plain: Vec<u8> = scramble(scrambled).collect();
        if check_byte(&plain) != *check {
            return Err("the check byte does not match".into());
        }
        Ok(plain)
    }
}

/// Makes an `EncryptedFilePersistence` at `<ns.dir>/<ns.name>`.
#[derive(Debug, Default)]
struct EncryptedFileFactory {
    /// The same files as the file plugin's, so its fault hooks apply as they are.
    files: FileFactory,
}

fn path(ns: &Namespace) -> PathBuf {
    ns.dir.join(&ns.name)
}

impl PluginFactory for EncryptedFileFactory {
    fn label(&self) -> String {
        "encrypted-file (test cipher)".into()
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        validate_name(&ns.name)?;
        Ok(Box::new(EncryptedFilePersistence::new(
            path(ns),
            TestCipher,
        )?))
    }

    fn cleanup(&self, ns: &Namespace) -> Result<()> {
        self.files.cleanup(ns)
    }

    /// Bytes that are no ciphertext of the cipher: a load must say CorruptData.
    fn corrupt_stored_data(&self, ns: &Namespace) -> Result<()> {
        let path = path(ns);
        fs::write(&path, b"not a ciphertext").map_err(|e| Error::io("write", &path, e))
    }

    fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.files.inject_fault(ns, fault)
    }

    fn clear_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.files.clear_fault(ns, fault)
    }
}

conformance::harness!(EncryptedFileFactory::default);
