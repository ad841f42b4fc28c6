//! The suite against `linux-keyutils-keyring-store` (the Linux kernel keyring, no daemon)
//! through `KeyringStore`; see `keyring_store/mod.rs`. Keys go to the keyring the store
//! picks (the session keyring, which the worker processes inherit). Known gaps:
//! `keyring_store_keyutils.toml`.

#[cfg(target_os = "linux")]
mod keyring_store;

/// A kernel "user" key holds at most 32,767 bytes.
#[cfg(target_os = "linux")]
const MAX_SIZE: usize = 32_767;

#[cfg(target_os = "linux")]
fn main() {
    const TARGET: &str = "keyring_store_keyutils";
    let store = keyring_store::open_or_exit(TARGET, linux_keyutils_keyring_store::Store::new());
    keyring_store::run(
        keyring_store::StoreFactory::new(store, Some(MAX_SIZE)),
        "keyring_store_keyutils.toml",
    )
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIP keyring_store_keyutils: the kernel keyring is Linux-only");
}
