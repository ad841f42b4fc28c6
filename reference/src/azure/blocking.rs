//! Runs the blocking cache work (lock waits, file and keyring I/O) off the async executor.
//!
//! A dedicated thread per call, not a runtime's blocking pool: the wrapper works on any
//! executor (azure_core does not require tokio). A thread spawn costs tens of
//! microseconds, small next to a cache read.

use std::{io, thread};

use futures_channel::oneshot;

/// Runs `work` on a new named thread and awaits its result; `Err` when the OS refuses a
/// thread, or the work panicked.
pub(super) async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let (answer, result) = oneshot::channel();
    spawn(move || {
        let _ = answer.send(work());
    })?;
    result
        .await
        .map_err(|_| io::Error::other("the token cache thread ended without an answer"))
}

/// Spawns `work` on a new named thread, for work that has to hold something across the
/// caller's `await`s that cannot leave its thread (the device-code session's in-memory
/// store holds a mutex guard); `Err` when the OS refuses a thread.
pub(super) fn spawn(work: impl FnOnce() + Send + 'static) -> io::Result<()> {
    thread::Builder::new()
        .name("token-cache".into())
        .spawn(work)
        .map(drop)
}
