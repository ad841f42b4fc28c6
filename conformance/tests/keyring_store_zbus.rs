//! The suite against `zbus-secret-service-keyring-store` (the Secret Service over zbus,
//! the `keyring` crate family's own) on a private gnome-keyring that this test starts,
//! through `KeyringStore`; see `keyring_store/mod.rs`. Known gaps:
//! `keyring_store_zbus.toml`.
//!
//! The store reads the session bus only from `DBUS_SESSION_BUS_ADDRESS` (it takes no
//! configuration), so this binary sets that variable to the private bus, in `main` before
//! any other thread exists; the worker processes inherit it. Without gnome-keyring the
//! run is skipped with the reason, and under `CI` it fails.

#[cfg(target_os = "linux")]
#[path = "../../reference/tests/secret_service_support/daemons.rs"]
mod keyring;

#[cfg(target_os = "linux")]
mod keyring_store;

#[cfg(target_os = "linux")]
fn main() {
    use conformance::protocol::is_worker;

    const TARGET: &str = "keyring_store_zbus";
    // A worker was started with the parent's bus in its environment.
    let _keyring = if is_worker() {
        None
    } else {
        if !keyring::available_or_skip(TARGET) {
            return;
        }
        let keyring = keyring::PrivateKeyring::start();
        // SAFETY: no other thread has been started yet in this process; the store reads
        // the session bus only from this variable.
        unsafe { std::env::set_var("DBUS_SESSION_BUS_ADDRESS", keyring.address()) };
        Some(keyring)
    };
    let store = zbus_secret_service_keyring_store::Store::new().unwrap_or_else(|e| {
        eprintln!("{TARGET}: no Secret Service store: {e}");
        std::process::exit(2);
    });
    keyring_store::run(
        keyring_store::StoreFactory::new(store, None),
        "keyring_store_zbus.toml",
    )
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIP keyring_store_zbus: the Secret Service store runs on Linux only here");
}
