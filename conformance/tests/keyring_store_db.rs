//! The suite against `db-keystore` (an SQLite-format database file through turso, the
//! `keyring` crate family's store for machines without a keyring service) through
//! `KeyringStore`; see `keyring_store/mod.rs`. Known gaps: `keyring_store_db.toml`.
//!
//! The store is in its default configuration (no encryption, turso's default I/O), in a
//! database of this run's own, in a temporary directory removed after the run
//! (`keyring_store/in_child.rs`). Every process of the run opens that file: the store
//! reopens its database for every operation so that processes can share it, which the
//! multi-process cases check.

#[cfg(target_os = "linux")]
mod keyring_store;

#[cfg(target_os = "linux")]
#[path = "keyring_store/in_child.rs"]
mod in_child;

/// db-keystore refuses secrets over 65,536 bytes (`MAX_SECRET_LEN`, "to prevent
/// accidental blow up of db") with `TooLong`.
#[cfg(target_os = "linux")]
const MAX_SIZE: usize = 65_536;

/// The database file of the run.
#[cfg(target_os = "linux")]
const DB_ENV: &str = "IDENTITY_CACHE_DB_KEYSTORE";

#[cfg(target_os = "linux")]
fn main() {
    const TARGET: &str = "keyring_store_db";
    let open = || {
        // Never the store's default path: that is the user's own keystore.
        let path = std::env::var_os(DB_ENV).ok_or_else(|| {
            keyring_core::Error::Invalid(DB_ENV.into(), "not set by the parent".into())
        })?;
        db_keystore::DbKeyStore::new(db_keystore::DbKeyStoreConfig {
            path: path.into(),
            ..Default::default()
        })
    };
    in_child::main(TARGET, Some(MAX_SIZE), open, || {
        let dir = tempfile::Builder::new()
            .prefix("keyring_store_db-")
            .tempdir()
            .unwrap_or_else(|e| {
                eprintln!("{TARGET}: no directory for the database: {e}");
                std::process::exit(2);
            });
        let path = dir.path().join("keystore.db");
        Some((dir, DB_ENV, path.into()))
    })
}

#[cfg(not(target_os = "linux"))]
fn main() {
    // A Linux-only dev-dependency: the macOS and Windows jobs do not build turso.
    eprintln!("SKIP keyring_store_db: db-keystore is judged on Linux only");
}
