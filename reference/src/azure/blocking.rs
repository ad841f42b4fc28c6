//! Runs the blocking cache work (lock waits, file and keyring I/O) off the async executor.
//!
//! A dedicated thread per token request, not a runtime's blocking pool: the wrapper works
//! on any executor (azure_core does not require tokio), and the thread has to live across
//! the inner credential's `await` anyway, because it holds the cache lock while another
//! process would otherwise refresh too. A token request costs one thread spawn (tens of
//! microseconds), small next to a cache read.

use std::thread;

/// Spawns `work` on a new named thread; `Err` when the OS refuses a thread.
pub(super) fn spawn(work: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    thread::Builder::new()
        .name("token-cache".into())
        .spawn(work)
        .map(drop)
}
