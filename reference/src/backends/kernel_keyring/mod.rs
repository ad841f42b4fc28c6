//! [`KernelKeyringPersistence`]: Linux without a Secret Service. The cache in a file,
//! encrypted with authentication under a random key that the kernel keeps.
//!
//! The shape is the DPAPI backend's (an encrypted blob written atomically by the file
//! plugin, the MSAL lock beside it); only where the key comes from is new:
//! - `jwe.rs`: the file format, a compact JWE (`dir`, `A256GCM`) around `aes-gcm`;
//! - `key.rs`: the key in the user's persistent kernel keyring, through `linux-keyutils`.
//!
//! # The Go SDK
//!
//! Key naming and placement follow `azidentity/cache` (`cache_linux.go`,
//! github.com/Azure/azure-sdk-for-go, read for this backend): a `user` key described by
//! the cache name, 32 random bytes and a NUL, in the persistent keyring linked into the
//! user keyring, else the user keyring; `kid` is the key's serial number. Its *cipher*
//! differs: Go writes `"enc":"A128CBC-HS256"` (its own AES-CBC + HMAC-SHA-256 code) and
//! authenticates no header (it passes empty additional data, where RFC 7516 asks for the
//! encoded header). This backend writes standard `A256GCM`, which JOSE libraries read,
//! with the RustCrypto AEAD; a Go-written file is therefore
//! [`CorruptData`](ErrorKind::CorruptData) here, and a Go program reads ours as empty.
//! Sharing a cache with Go would take `A128CBC-HS256` with empty additional data, that
//! is an AES-CBC + HMAC composition of our own: see the crate's report on issue 17.

mod jwe;
mod key;
mod persistence;

pub use persistence::KernelKeyringPersistence;
