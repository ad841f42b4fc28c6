//! The suite in a child process, against a store that needs something set up first (a
//! Secret Service, a database file), found through one environment variable: the Secret
//! Service stores read the bus only from `DBUS_SESSION_BUS_ADDRESS` (they take no
//! configuration), and every process of a run must open the same database. The target
//! includes this file beside `keyring_store`.
//!
//! This process sets the thing up and runs the suite in a child, this binary again, with
//! the variable set; the child's worker processes inherit it. The parent never changes
//! its own environment (unsound once another thread runs, and testcontainers starts
//! threads), and it tears the set-up down when the child is done, whatever the verdict:
//! the harness ends its own process without running destructors.

use std::{ffi::OsString, process::Command, sync::Arc, time::Instant};

use keyring_core::api::CredentialStoreApi;

use crate::keyring_store;

/// Set in the child that runs the suite: the set-up is the parent's.
const CHILD_ENV: &str = "IDENTITY_CACHE_KEYRING_STORE_CHILD";

/// What the parent set up: a handle that tears it down when dropped, and the variable
/// (name, value) through which the store finds it.
pub type SetUp<T> = (T, &'static str, OsString);

/// Runs the suite for `target` against the store `open` makes, taking secrets of at most
/// `max_size` bytes when it has a limit, with the known gaps of `{target}.toml`, once
/// `set_up` has set up what it needs. `set_up` returns `None` when the run is skipped,
/// having said why; this returns only then.
pub fn main<S, T>(
    target: &str,
    max_size: Option<usize>,
    open: impl FnOnce() -> keyring_core::Result<Arc<S>>,
    set_up: impl FnOnce() -> Option<SetUp<T>>,
) where
    S: CredentialStoreApi + Send + Sync + 'static,
{
    if std::env::var_os(CHILD_ENV).is_some() {
        let store = keyring_store::open_or_exit(target, open());
        keyring_store::run(
            keyring_store::StoreFactory::new(store, max_size),
            &format!("{target}.toml"),
        )
    }
    let Some((guard, name, value)) = set_up() else {
        return;
    };
    let run_start = Instant::now();
    let child = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(name, &value)
            .env(CHILD_ENV, "1")
            .status()
    });
    eprintln!(
        "{target}: the suite with {name}={} took {} ms",
        value.to_string_lossy(),
        run_start.elapsed().as_millis()
    );
    drop(guard);
    match child {
        // Killed by a signal: no exit code, a failure.
        Ok(status) => std::process::exit(status.code().unwrap_or(1)),
        Err(e) => {
            eprintln!("{target}: cannot run the suite in a child process: {e}");
            std::process::exit(2);
        }
    }
}
