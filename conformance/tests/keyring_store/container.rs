//! The Secret Service, set up for `keyring_store/in_child.rs`, in the libsecret test container,
//! reached over D-Bus on TCP (`keyring_store_zbus_container`,
//! `keyring_store_dbus_container`); the target includes this file beside it and
//! `libsecret_container`. Without a Docker engine or without the image, the run is
//! skipped with the reason; with `CI` set, that fails it instead.

use std::sync::Arc;

use keyring_core::api::CredentialStoreApi;

use crate::{in_child, libsecret_container, report_skip};

/// Runs the suite for `target` against the store `open` makes on the container's bus.
/// Returns only when the run is skipped.
pub fn main<S: CredentialStoreApi + Send + Sync + 'static>(
    target: &str,
    open: impl FnOnce() -> keyring_core::Result<Arc<S>>,
) {
    in_child::main(target, None, open, || {
        let image = libsecret_container::image();
        match libsecret_container::check_engine_and_image(&image)
            .and_then(|()| libsecret_container::start(&image, target))
        {
            Ok(started) => {
                eprintln!(
                    "{target}: {image} ready {} ms after start, bus {}",
                    started.ready_after.as_millis(),
                    started.address
                );
                let address = started.address.clone();
                Some((started, "DBUS_SESSION_BUS_ADDRESS", address.into()))
            }
            Err(reason) => {
                let reason = format!("{reason}; this target needs the {image} container");
                if libsecret_container::in_ci() {
                    eprintln!("FAIL {target}: CI is set and {reason}");
                    std::process::exit(1);
                }
                report_skip(&format!("{target} (the whole suite)"), &reason);
                None
            }
        }
    })
}
