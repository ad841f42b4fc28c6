//! A Secret Service store of the `keyring` crate family against a Secret Service that the
//! target starts: a private gnome-keyring (`private_keyring.rs`) or the libsecret container
//! (`container.rs`). The target includes this file beside `keyring_store` and one of those.
//!
//! The stores read the session bus only from `DBUS_SESSION_BUS_ADDRESS` (they take no
//! configuration). So this process starts the Secret Service and runs the suite in a
//! child, this binary again, with that variable set to its bus; the child's worker
//! processes inherit it. The parent never changes its own environment (unsound once
//! testcontainers has started its threads), and it stops the Secret Service when the child
//! is done, whatever the verdict: the harness ends its process without destructors.

use std::{process::Command, sync::Arc, time::Instant};

use keyring_core::api::CredentialStoreApi;

use crate::keyring_store;

/// Set in the child that runs the suite: the Secret Service is the parent's.
const CHILD_ENV: &str = "IDENTITY_CACHE_KEYRING_STORE_CHILD";

/// Runs the suite for `target` against the store `open` makes, with the known gaps of
/// `{target}.toml`, on the bus of the Secret Service `start` gives (a handle that stops
/// it when dropped, and its bus address). `start` returns `None` when the run is skipped,
/// having said why; this returns only then.
pub fn main<S, Service>(
    target: &str,
    open: impl FnOnce() -> keyring_core::Result<Arc<S>>,
    start: impl FnOnce() -> Option<(Service, String)>,
) where
    S: CredentialStoreApi + Send + Sync + 'static,
{
    if std::env::var_os(CHILD_ENV).is_some() {
        let store = keyring_store::open_or_exit(target, open());
        keyring_store::run(
            keyring_store::StoreFactory::new(store, None),
            &format!("{target}.toml"),
        )
    }
    let Some((service, address)) = start() else {
        return;
    };
    let run_start = Instant::now();
    let child = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env(CHILD_ENV, "1")
            .status()
    });
    eprintln!(
        "{target}: the suite on {address} took {} ms",
        run_start.elapsed().as_millis()
    );
    drop(service);
    match child {
        // Killed by a signal: no exit code, a failure.
        Ok(status) => std::process::exit(status.code().unwrap_or(1)),
        Err(e) => {
            eprintln!("{target}: cannot run the suite in a child process: {e}");
            std::process::exit(2);
        }
    }
}
