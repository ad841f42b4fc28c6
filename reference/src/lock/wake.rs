//! The pause between two attempts to create the lock file: a sleep that starts at
//! [`POLL_MIN`] and doubles up to [`POLL_MAX`], so a release is noticed within about a
//! millisecond, where the other SDKs sleep 50–250 ms.
//!
//! Why not inotify on Linux: it was built and measured (see the benchmark `lock`). Waking
//! on the lock file's removal makes every waiter wake on every release, also on each
//! release of a holder that re-acquires at once; on a two-core machine four processes
//! then reached 44–62 % of one process's throughput, against 80–135 % with this polling.
//! With polling, waiters sleep through the holder's slice (see `super::local::Run`)
//! and hand-off still takes about a millisecond.

use std::time::{Duration, Instant};

/// The first pause; pauses double up to [`POLL_MAX`].
pub(super) const POLL_MIN: Duration = Duration::from_micros(50);

/// The longest pause between two attempts: a release is noticed within about this long.
pub(super) const POLL_MAX: Duration = Duration::from_millis(1);

/// The pause state of one acquire.
#[derive(Debug)]
pub(super) struct Pause {
    next: Duration,
}

impl Pause {
    pub(super) fn new() -> Self {
        Pause { next: POLL_MIN }
    }

    /// After progress (the file vanished or was removed): the next pause is short again.
    pub(super) fn reset(&mut self) {
        self.next = POLL_MIN;
    }

    /// Sleeps for the current pause, at most until `deadline`.
    pub(super) fn wait(&mut self, deadline: Instant) {
        let until = (Instant::now() + self.next).min(deadline);
        self.next = (self.next * 2).min(POLL_MAX);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
}
