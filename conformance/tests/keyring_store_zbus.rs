//! The suite against `zbus-secret-service-keyring-store` (the Secret Service over zbus,
//! the `keyring` crate family's own) on a private gnome-keyring that this test starts,
//! through `KeyringStore`; see `keyring_store/mod.rs` and
//! `keyring_store/in_child.rs`. Known gaps: `keyring_store_zbus.toml`.

#[cfg(target_os = "linux")]
#[path = "../../reference/tests/secret_service_support/daemons.rs"]
mod keyring;

#[cfg(target_os = "linux")]
mod keyring_store;

#[cfg(target_os = "linux")]
#[path = "keyring_store/in_child.rs"]
mod in_child;

#[cfg(target_os = "linux")]
#[path = "keyring_store/private_keyring.rs"]
mod private_keyring;

#[cfg(target_os = "linux")]
fn main() {
    private_keyring::main(
        "keyring_store_zbus",
        zbus_secret_service_keyring_store::Store::new,
    )
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIP keyring_store_zbus: the Secret Service store runs on Linux only here");
}
