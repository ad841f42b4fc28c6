//! The suite against `db-keystore` (an SQLite-format database file through turso, the
//! `keyring` crate family's store for machines without a keyring service) through
//! `KeyringStore`; see `keyring_store/mod.rs`. Known gaps: `keyring_store_db.toml`.
//!
//! The store is in its default configuration (no encryption, turso's default I/O), in a
//! database of this run's own. Worker processes open the same file: the store reopens its
//! database for every operation so that processes can share it, which is what the
//! multi-process cases check. The file is under cargo's `target/tmp` and stays there (the
//! harness ends the process without running destructors); `cargo clean` removes it.

#[cfg(target_os = "linux")]
mod keyring_store;

/// db-keystore refuses secrets over 65,536 bytes (`MAX_SECRET_LEN`, "to prevent
/// accidental blow up of db") with `TooLong`.
#[cfg(target_os = "linux")]
const MAX_SIZE: usize = 65_536;

/// The database file of the run, for its worker processes.
#[cfg(target_os = "linux")]
const DB_ENV: &str = "IDENTITY_CACHE_DB_KEYSTORE";

#[cfg(target_os = "linux")]
fn main() {
    use std::path::PathBuf;

    const TARGET: &str = "keyring_store_db";
    let path = match std::env::var_os(DB_ENV) {
        // A worker: the parent's database.
        Some(path) => PathBuf::from(path),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("keyring_store_db-")
                .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                .unwrap_or_else(|e| {
                    eprintln!("{TARGET}: no directory for the database: {e}");
                    std::process::exit(2);
                })
                .keep();
            let path = dir.join("keystore.db");
            // SAFETY: no other thread has been started yet in this process; the worker
            // processes find the database through this variable.
            unsafe { std::env::set_var(DB_ENV, &path) };
            path
        }
    };
    let config = db_keystore::DbKeyStoreConfig {
        path,
        ..Default::default()
    };
    let store = keyring_store::open_or_exit(TARGET, db_keystore::DbKeyStore::new(config));
    keyring_store::run(
        keyring_store::StoreFactory::new(store, Some(MAX_SIZE)),
        "keyring_store_db.toml",
    )
}

#[cfg(not(target_os = "linux"))]
fn main() {
    // A Linux-only dev-dependency: the macOS and Windows jobs do not build turso.
    eprintln!("SKIP keyring_store_db: db-keystore is judged on Linux only");
}
