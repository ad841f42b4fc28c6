//! The Secret Service, set up for `keyring_store/in_child.rs`, on a private gnome-keyring
//! (`keyring_store_zbus`, `keyring_store_dbus`); the target includes this file beside it
//! and the private keyring (`keyring`, daemons.rs). Without gnome-keyring the run is
//! skipped with the reason, and under `CI` it fails.

use std::sync::Arc;

use keyring_core::api::CredentialStoreApi;

use crate::{in_child, keyring};

/// Runs the suite for `target` against the store `open` makes on a private keyring.
/// Returns only when the run is skipped.
pub fn main<S: CredentialStoreApi + Send + Sync + 'static>(
    target: &str,
    open: impl FnOnce() -> keyring_core::Result<Arc<S>>,
) {
    in_child::main(target, None, open, || {
        keyring::available_or_skip(target).then(|| {
            let keyring = keyring::PrivateKeyring::start();
            let address = keyring.address().to_owned();
            (keyring, "DBUS_SESSION_BUS_ADDRESS", address.into())
        })
    })
}
