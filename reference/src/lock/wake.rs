//! The pause between two looks at the lock file of a waiter that polls: a sleep that
//! starts at [`POLL_MIN`] and doubles up to a cap, where the other SDKs sleep 50–250 ms.
//!
//! Polling is the fallback. The waiter whose turn it is sleeps until the release instead
//! whenever the holder holds the lock file's OS lock, and a waiter behind others sleeps
//! until the waiter just ahead leaves the line (`super::watch`). A waiter polls while the
//! holder takes no OS lock (MSAL Node, Python's `filelock` variant: nothing in the OS
//! tells of their release), while the lock file is momentarily missing although the guard
//! is held (our holder between its guard and its link), when its helper thread is busy
//! with another file, and on Windows.
//!
//! The first waiter in line, the only one that may take the lock next, caps its pauses at
//! [`POLL_MAX_FIRST`], so it takes a released lock within a fraction of a millisecond.
//! The waiters behind it only watch the line (and the lock, for stale files and a stuck
//! first waiter), so they cap at [`POLL_MAX`]: fewer wake-ups, each of which on a busy
//! machine takes the CPU from the holder.
//!
//! Why not inotify on Linux: it was built and measured (see the benchmark `lock`). Waking
//! on the lock file's removal makes every waiter wake on every release, also on each
//! release of a holder that re-acquires at once; on a two-core machine four processes
//! then reached 44–62 % of one process's throughput, against 80–135 % with polling. The
//! OS-lock wake-up of `super::watch` wakes only the first waiter in line, and only for
//! the holder's own file; the others sleep through the holder's slice (see
//! `super::local::Run`).

use std::time::{Duration, Instant};

/// The first pause; pauses double up to [`POLL_MAX`].
pub(super) const POLL_MIN: Duration = Duration::from_micros(50);

/// The longest pause of a waiter that is not first in line.
pub(super) const POLL_MAX: Duration = Duration::from_millis(2);

/// The longest pause of the first waiter in line (see `super::queue`).
pub(super) const POLL_MAX_FIRST: Duration = Duration::from_micros(250);

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

    /// Sleeps for the current pause, at most until `deadline`; `first` says whether
    /// this waiter is first in line.
    pub(super) fn wait(&mut self, deadline: Instant, first: bool) {
        let max = if first { POLL_MAX_FIRST } else { POLL_MAX };
        self.next = self.next.min(max);
        let until = (Instant::now() + self.next).min(deadline);
        self.next = (self.next * 2).min(max);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_reset_starts_over() {
        let far = Instant::now() + Duration::from_secs(60);
        let mut pause = Pause::new();
        let mut seen = Vec::new();
        for _ in 0..7 {
            seen.push(pause.next);
            pause.wait(far, false);
        }
        let us = Duration::from_micros;
        assert_eq!(
            seen,
            [
                us(50),
                us(100),
                us(200),
                us(400),
                us(800),
                us(1600),
                POLL_MAX
            ]
        );
        pause.reset();
        assert_eq!(pause.next, POLL_MIN);
        pause.wait(far, true);
        pause.wait(far, true);
        pause.wait(far, true);
        assert_eq!(pause.next, POLL_MAX_FIRST, "the first in line caps lower");
    }

    #[test]
    fn a_pause_sleeps_at_least_its_length() {
        // A lower bound only: a sleep never ends early, but may end late on a busy machine.
        let mut pause = Pause::new();
        pause.next = Duration::from_millis(2);
        let start = Instant::now();
        pause.wait(start + Duration::from_secs(60), false);
        assert!(start.elapsed() >= Duration::from_millis(2));
    }
}
