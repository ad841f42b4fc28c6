//! The suite against `zbus-secret-service-keyring-store` on gnome-keyring in the libsecret
//! test container, over D-Bus on TCP, through `KeyringStore`; see `keyring_store/mod.rs`
//! and `keyring_store/in_child.rs`. Known gaps: `keyring_store_zbus_container.toml`.

#[cfg(target_os = "linux")]
mod keyring_store;

#[cfg(target_os = "linux")]
#[allow(
    dead_code,
    reason = "the suite reaches the container over the bus only: it never reads the container handle or the image"
)]
mod libsecret_container;

#[cfg(target_os = "linux")]
#[path = "keyring_store/in_child.rs"]
mod in_child;

#[cfg(target_os = "linux")]
#[path = "keyring_store/container.rs"]
mod store_container;

#[cfg(target_os = "linux")]
include!("../../reference/tests/skip/report.rs");

#[cfg(target_os = "linux")]
fn main() {
    store_container::main(
        "keyring_store_zbus_container",
        zbus_secret_service_keyring_store::Store::new,
    )
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIP keyring_store_zbus_container: the libsecret container runs on Linux only");
}
