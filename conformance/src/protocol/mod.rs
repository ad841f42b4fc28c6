//! The JSON-lines process protocol (protocol 1, specified in `conformance/PROTOCOL.md`).
//!
//! A plugin written in any language is checked by running it as a process that answers
//! one JSON request per line on stdin with one JSON response per line on stdout.
//!
//! - [`ProcessPlugin`] is the suite's side: it spawns the command, performs the `hello`
//!   handshake and implements [`CachePersistence`](identity_cache_persistence::CachePersistence)
//!   over the pipes, so every case runs unchanged against an external plugin.
//! - [`serve`] is the plugin's side for Rust plugins: it answers the protocol with any
//!   `CachePersistence` built from the namespace sent in `hello`.
//! - The worker functions let multi-process cases re-execute the current test binary as
//!   protocol servers (`CONFORMANCE_WORKER=1`), or run an `exec:<command>` plugin.

mod client;
mod lines;
pub mod message;
mod server;
pub(crate) mod stderr;
mod worker;

/// Locks a mutex, also after another thread panicked while holding it: the state the
/// protocol's mutexes guard (pipes, child handles, handle and lock maps) is updated in
/// steps that leave it consistent.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub use client::{ClientOptions, NoAnswer, ProcessPlugin};
pub use message::PROTOCOL_VERSION;
pub use server::{ServerInfo, serve, serve_with};
pub use worker::{
    EXEC_PREFIX, ExecFactory, PARENT_ENV, SelfExecLauncher, WORKER_ENV, is_worker, serve_worker,
    serve_worker_if_requested,
};
