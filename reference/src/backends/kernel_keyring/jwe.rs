//! The cache file's format: a JWE (RFC 7516) in compact serialization, direct encryption
//! (`"alg":"dir"`) with AES-256-GCM (`"enc":"A256GCM"`, RFC 7518 §5.3).
//!
//! Why by hand: no well-kept pure-Rust JWE crate exists without OpenSSL, and the format
//! is five base64url fields around one AEAD call. This file is only that glue: the cipher
//! is RustCrypto's `aes-gcm`, the encoding the `base64` crate, the header `serde_json`.
//! It follows RFC 7516 §5.1 to the letter (the additional authenticated data is the
//! ASCII of the encoded protected header), so any JOSE library (Python's `jwcrypto` in
//! the interop test) reads what we write and writes what we read.
//!
//! `kid` is the serial number of the kernel key, in decimal, as the Go SDK's
//! `azidentity/cache` writes it: a reader tells "written under a key that is gone" from
//! "tampered with".

use std::fmt;

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{
        Aead, KeyInit, OsRng, Payload,
        rand_core::{self, RngCore},
    },
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};

/// The JOSE `enc` this backend writes and reads.
pub(crate) const ENC: &str = "A256GCM";
/// AES-GCM's 96-bit IV and 128-bit tag, the sizes RFC 7518 §5.3 prescribes.
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// A key's length: 256 bits.
pub(crate) const KEY_LEN: usize = 32;

/// A 256-bit content-encryption key. `Debug` never shows it; it is zeroed on drop.
pub(crate) struct ContentKey([u8; KEY_LEN]);

impl ContentKey {
    /// A key from exactly [`KEY_LEN`] bytes.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(ContentKey)
    }

    /// A fresh random key from the OS generator; its failure is returned, not a panic.
    pub(crate) fn random() -> Result<Self, rand_core::Error> {
        let mut key = ContentKey([0; KEY_LEN]);
        OsRng.try_fill_bytes(&mut key.0)?;
        Ok(key)
    }

    /// The raw bytes, to store in the kernel keyring.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }
}

impl Drop for ContentKey {
    fn drop(&mut self) {
        // Best effort without a `zeroize` dependency: volatile writes are not elided.
        for byte in &mut self.0 {
            // SAFETY: `byte` is a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContentKey(..)")
    }
}

/// Why a file is not a JWE this backend can open. Never contains key or plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JweError {
    /// Not five dot-separated base64url fields, an encrypted key present, a header
    /// that is not JSON, or an IV or tag of the wrong length.
    Malformed(&'static str),
    /// A well-formed JWE of another algorithm, e.g. the Go SDK's `A128CBC-HS256`.
    Unsupported { alg: String, enc: String },
    /// The tag does not verify: the file was changed, or encrypted under another key.
    Authentication,
    /// Sealing only: the OS random generator failed, or the plaintext is beyond GCM's
    /// 64 GiB limit.
    Seal(&'static str),
}

impl fmt::Display for JweError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JweError::Malformed(what) => write!(f, "not a compact JWE: {what}"),
            JweError::Unsupported { alg, enc } => write!(
                f,
                "a JWE with alg {alg:?} and enc {enc:?}; this backend reads only \"dir\" with {ENC:?}"
            ),
            JweError::Authentication => f.write_str(
                "the authentication tag does not verify: the file was changed or encrypted under another key",
            ),
            JweError::Seal(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for JweError {}

/// A parsed compact JWE, not yet decrypted.
#[derive(Debug)]
pub(crate) struct Sealed<'a> {
    /// The encoded protected header: the additional authenticated data.
    protected: &'a str,
    /// The header's `kid`, when present.
    pub(crate) kid: Option<String>,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
}

/// Encrypts `plaintext` under `key` into a compact JWE naming key `kid`.
pub(crate) fn seal(key: &ContentKey, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, JweError> {
    // Field order as Go's `jwe.Header` marshals it; serde_json escapes `kid`.
    let header = serde_json::json!({ "alg": "dir", "enc": ENC, "kid": kid }).to_string();
    let protected = B64.encode(header);
    let mut iv = [0u8; IV_LEN];
    OsRng
        .try_fill_bytes(&mut iv)
        .map_err(|_| JweError::Seal("the OS random generator failed"))?;
    let nonce = Nonce::from_slice(&iv);
    let mut sealed = key
        .cipher()
        .encrypt(
            nonce,
            Payload {
                msg: plaintext,
                aad: protected.as_bytes(),
            },
        )
        // Only for a plaintext beyond GCM's 64 GiB limit.
        .map_err(|_| JweError::Seal("the plaintext is too large for AES-GCM"))?;
    let tag = sealed.split_off(sealed.len() - TAG_LEN);
    let out = format!(
        "{protected}..{}.{}.{}",
        B64.encode(iv),
        B64.encode(&sealed),
        B64.encode(tag)
    );
    Ok(out.into_bytes())
}

/// Parses a compact JWE of `"dir"` and [`ENC`], without decrypting.
pub(crate) fn parse(bytes: &[u8]) -> Result<Sealed<'_>, JweError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JweError::Malformed("not ASCII"))?;
    // Tolerate a final newline, as a file edited by hand may have.
    let text = text.trim_end_matches(['\n', '\r']);
    let fields: Vec<&str> = text.split('.').collect();
    let [protected, encrypted_key, iv, ciphertext, tag] = fields[..] else {
        return Err(JweError::Malformed("not five dot-separated fields"));
    };
    let decode =
        |field: &str, what: &'static str| B64.decode(field).map_err(|_| JweError::Malformed(what));
    // Only alg, enc and kid are read; other fields are ignored, as RFC 7516 allows for
    // fields that are not in `crit`.
    let header: serde_json::Value =
        serde_json::from_slice(&decode(protected, "the header is not base64url")?)
            .map_err(|_| JweError::Malformed("the header is not JSON"))?;
    let field = |name: &str| header.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let (Some(alg), Some(enc)) = (field("alg"), field("enc")) else {
        return Err(JweError::Malformed("the header has no alg or enc"));
    };
    if alg != "dir" || enc != ENC {
        return Err(JweError::Unsupported { alg, enc });
    }
    if !encrypted_key.is_empty() {
        return Err(JweError::Malformed(
            "direct encryption has no encrypted key",
        ));
    }
    let sealed = Sealed {
        protected,
        kid: field("kid"),
        iv: decode(iv, "the IV is not base64url")?,
        ciphertext: decode(ciphertext, "the ciphertext is not base64url")?,
        tag: decode(tag, "the tag is not base64url")?,
    };
    if sealed.iv.len() != IV_LEN || sealed.tag.len() != TAG_LEN {
        return Err(JweError::Malformed("the IV or tag has the wrong length"));
    }
    Ok(sealed)
}

impl Sealed<'_> {
    /// The plaintext, once the tag verifies under `key`.
    pub(crate) fn open(&self, key: &ContentKey) -> Result<Vec<u8>, JweError> {
        let mut msg = Vec::with_capacity(self.ciphertext.len() + TAG_LEN);
        msg.extend_from_slice(&self.ciphertext);
        msg.extend_from_slice(&self.tag);
        key.cipher()
            .decrypt(
                Nonce::from_slice(&self.iv),
                Payload {
                    msg: &msg,
                    aad: self.protected.as_bytes(),
                },
            )
            .map_err(|_| JweError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> ContentKey {
        ContentKey([byte; KEY_LEN])
    }

    #[test]
    fn round_trips_and_has_the_compact_shape() {
        for plain in [&b""[..], b"{}", &[0xffu8; 1000]] {
            let sealed = seal(&key(1), "42", plain).expect("seal");
            let text = std::str::from_utf8(&sealed).expect("ascii");
            let fields: Vec<&str> = text.split('.').collect();
            assert_eq!(fields.len(), 5);
            assert!(fields[1].is_empty(), "no encrypted key for dir");
            let parsed = parse(&sealed).expect("parse");
            assert_eq!(parsed.kid.as_deref(), Some("42"));
            assert_eq!(parsed.open(&key(1)).expect("open"), plain);
        }
    }

    #[test]
    fn the_header_is_what_go_writes_but_for_enc() {
        let sealed = seal(&key(1), "7", b"x").expect("seal");
        let text = std::str::from_utf8(&sealed).expect("ascii");
        let header = B64
            .decode(text.split('.').next().expect("header"))
            .expect("b64");
        assert_eq!(header, br#"{"alg":"dir","enc":"A256GCM","kid":"7"}"#);
    }

    #[test]
    fn another_key_or_a_changed_byte_fails_authentication() {
        let sealed = seal(&key(1), "1", b"secret tokens").expect("seal");
        let parsed = parse(&sealed).expect("parse");
        assert_eq!(parsed.open(&key(2)), Err(JweError::Authentication));
        // Change the header's kid: the header is authenticated too.
        let text = String::from_utf8(sealed.clone()).expect("ascii");
        let other = B64.encode(r#"{"alg":"dir","enc":"A256GCM","kid":"2"}"#);
        let forged = format!("{other}{}", &text[text.find('.').expect("dot")..]);
        let parsed = parse(forged.as_bytes()).expect("parse");
        assert_eq!(parsed.open(&key(1)), Err(JweError::Authentication));
        let err = JweError::Authentication.to_string();
        assert!(!err.contains("secret tokens"));
    }

    #[test]
    fn foreign_and_malformed_files_are_told_apart() {
        let go = format!(
            "{}..{}.{}.{}",
            B64.encode(r#"{"alg":"dir","enc":"A128CBC-HS256","kid":"5"}"#),
            B64.encode([0u8; 16]),
            B64.encode([0u8; 16]),
            B64.encode([0u8; 16])
        );
        assert!(matches!(
            parse(go.as_bytes()),
            Err(JweError::Unsupported { enc, .. }) if enc == "A128CBC-HS256"
        ));
        for bad in [&b"not a jwe"[..], b"a.b.c.d.e", b"\xff", b""] {
            assert!(matches!(parse(bad), Err(JweError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        assert_eq!(format!("{:?}", key(0xAB)), "ContentKey(..)");
    }
}
