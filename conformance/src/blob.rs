//! Test blobs and how failures talk about them without revealing them.
//!
//! Blob bytes never appear in a [`Failure`](crate::Failure): reports show a length and a
//! short hash, which is enough to tell blobs apart and to see truncation.

use identity_cache_persistence::Error;

/// FNV-1a, 64 bit: a fast, dependency-free fingerprint (not a security hash).
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// `"N bytes #hash"`: a blob as failures show it.
pub fn describe(bytes: &[u8]) -> String {
    format!("{} bytes #{:08x}", bytes.len(), fnv64(bytes) >> 32)
}

/// A `load` result as failures show it: `absent (None)` or `Some(N bytes #hash)`.
pub fn describe_loaded(loaded: &Option<Vec<u8>>) -> String {
    match loaded {
        None => "absent (None)".into(),
        Some(bytes) => format!("Some({})", describe(bytes)),
    }
}

/// A plugin error as failures show it: its kind and (shortened) message.
pub fn describe_error(err: &Error) -> String {
    const MAX: usize = 200;
    let mut message = err.to_string();
    if message.len() > MAX {
        let mut cut = MAX;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    format!("error of kind {}: {message}", err.kind())
}

/// Like [`describe_error`], with any text of `blob` in the message replaced by its
/// description: a plugin that leaks the blob into its errors (which `security` cases
/// report) must not leak it into the suite's reports as well.
pub fn describe_error_hiding(err: &Error, blob: &[u8]) -> String {
    let text = describe_error(err);
    let secret = String::from_utf8_lossy(blob);
    if secret.len() >= 8 && text.contains(secret.as_ref()) {
        text.replace(secret.as_ref(), &format!("<the blob: {}>", describe(blob)))
    } else {
        text
    }
}

/// Any result as failures show it.
pub fn describe_result<T: std::fmt::Debug>(
    result: &identity_cache_persistence::Result<T>,
) -> String {
    match result {
        Ok(value) => format!("Ok({value:?})"),
        Err(err) => describe_error(err),
    }
}

/// `len` random bytes from `rng`.
pub fn random(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    bytes
}

/// Magic prefix of [`self_checking`] blobs.
const MAGIC: &[u8; 4] = b"CCB1";
/// Header (magic, length, id) and trailer (hash) sizes of [`self_checking`] blobs.
const HEADER: usize = 4 + 8 + 8;
const TRAILER: usize = 8;

/// A blob of `len` bytes (at least 28) that carries its own length, an `id` and a hash of
/// everything before the trailer: [`check_self_checking`] tells a whole blob from a torn,
/// truncated or mixed one without knowing which save produced it.
pub fn self_checking(id: u64, len: usize) -> Vec<u8> {
    let len = len.max(HEADER + TRAILER);
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(len as u64).to_le_bytes());
    bytes.extend_from_slice(&id.to_le_bytes());
    let mut rng = fastrand::Rng::with_seed(id);
    while bytes.len() < len - TRAILER {
        bytes.push(rng.u8(..));
    }
    let hash = fnv64(&bytes);
    bytes.extend_from_slice(&hash.to_le_bytes());
    bytes
}

/// The id of a whole [`self_checking`] blob, or why it is not one.
pub fn check_self_checking(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < HEADER + TRAILER || &bytes[..4] != MAGIC {
        return Err(format!(
            "{} is not a blob the suite saved (bad header)",
            describe(bytes)
        ));
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let declared = word(4);
    if declared != bytes.len() as u64 {
        return Err(format!(
            "{} but its header says {declared} bytes (truncated or extended)",
            describe(bytes)
        ));
    }
    let body = bytes.len() - TRAILER;
    if word(body) != fnv64(&bytes[..body]) {
        return Err(format!(
            "{} fails its checksum (torn or mixed)",
            describe(bytes)
        ));
    }
    Ok(word(12))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_checking_blobs_detect_damage() {
        let blob = self_checking(7, 1000);
        assert_eq!(check_self_checking(&blob), Ok(7));
        assert!(check_self_checking(&blob[..999]).is_err());
        let mut torn = blob.clone();
        torn[500] ^= 1;
        assert!(check_self_checking(&torn).is_err());
        let mut mixed = self_checking(8, 1000);
        mixed[..500].copy_from_slice(&blob[..500]);
        assert!(check_self_checking(&mixed).is_err());
    }

    #[test]
    fn leaked_blobs_are_hidden_in_error_descriptions() {
        let err = Error::new(
            identity_cache_persistence::ErrorKind::Io,
            "could not save {\"token\":\"abc\"}",
        );
        let text = describe_error_hiding(&err, b"{\"token\":\"abc\"}");
        assert!(!text.contains("abc"), "{text}");
        assert!(text.contains("<the blob: 15 bytes #"), "{text}");
    }

    #[test]
    fn descriptions_do_not_contain_the_bytes() {
        let text = describe(b"super-secret-token");
        assert!(!text.contains("secret"));
        assert!(text.starts_with("18 bytes #"));
    }
}
