//! Removing a lock file on request, for tools such as `identity-cache unlock`: only when
//! its holder is provably gone, never a live holder's.

use super::{
    FileLock, Holder,
    stale::{self, Probe},
};
use crate::error::{Error, Result};

/// What [`FileLock::break_stale`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakStale {
    /// There was no lock file; nothing was removed.
    Free,
    /// The lock file was stale, for the reason given, and has been removed.
    Removed(Holder, &'static str),
    /// A live holder has the lock; the file was left alone.
    Held(Holder),
}

/// How often the path may change under us (a holder releasing, another breaker) before
/// we report what we saw last: each change is a real hand-off, so a few suffice.
const ATTEMPTS: usize = 8;

impl FileLock {
    /// Removes the lock file if, and only if, the judgement [`acquire`](Self::acquire)
    /// applies to a waiting process calls it stale, without taking the lock:
    ///
    /// - nobody holds the file's OS lock (the OS drops it when its holder dies), and
    /// - the pid written in it no longer runs, or now names a process started after the
    ///   file was written, or the file names no holder and is older than
    ///   [`GRACE`](super::GRACE).
    ///
    /// - No lock file: [`BreakStale::Free`].
    /// - Stale: removed, with the same safety against a racing acquirer as `acquire`'s
    ///   own removal (the path is checked to name the judged file while its OS lock is
    ///   held); [`BreakStale::Removed`] with the reason.
    /// - A live holder: [`BreakStale::Held`] with its pid when the file names one; the
    ///   file is not touched.
    /// - The path is not a regular file, or cannot be read: `Err` of the kind of the OS
    ///   error (see [`Error::io`]).
    ///
    /// Waiting processes would remove such a file anyway on their next poll; this is
    /// for a person who wants it gone now, and wants to be told who holds a live lock.
    pub fn break_stale(&self) -> Result<BreakStale> {
        let path = self.path();
        let inspect = |remove| {
            stale::probe(path, remove).map_err(|e| Error::io("inspect lock file", path, e))
        };
        let mut last = BreakStale::Free;
        for _ in 0..ATTEMPTS {
            let (holder, reason) = match inspect(false)? {
                Probe::Vanished => return Ok(BreakStale::Free),
                Probe::Busy(holder) => return Ok(BreakStale::Held(holder)),
                Probe::Stale(holder, reason) => (holder, reason),
                // Not produced without `remove`.
                Probe::Removed(holder) => (holder, "removed"),
            };
            // Judged again, removing this time: the file may have changed hands since.
            match inspect(true)? {
                Probe::Removed(removed) if removed == holder => {
                    return Ok(BreakStale::Removed(removed, reason));
                }
                Probe::Removed(removed) => {
                    return Ok(BreakStale::Removed(removed, "its holder is gone"));
                }
                Probe::Busy(holder) => return Ok(BreakStale::Held(holder)),
                // Replaced or removed by someone else in between: look again.
                Probe::Vanished | Probe::Stale(..) => last = BreakStale::Free,
            }
        }
        Ok(last)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn removes_only_what_a_waiter_would_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = FileLock::new(dir.path().join("msal.cache.lockfile"));
        assert_eq!(lock.break_stale().expect("probe"), BreakStale::Free);

        // A pid above Linux's limit: never running.
        std::fs::write(lock.path(), "4194400 /usr/bin/python3").expect("write");
        match lock.break_stale().expect("break") {
            BreakStale::Removed(holder, reason) => {
                assert_eq!(holder.pid, Some(4194400));
                assert_eq!(reason, "its holder is not running");
            }
            other => panic!("{other:?}"),
        }
        assert!(!lock.path().exists());

        // A live holder: this process, through the OS lock of its own acquire.
        let guard = lock.acquire(Duration::from_secs(5)).expect("acquire");
        match lock.break_stale().expect("probe") {
            BreakStale::Held(holder) => {
                assert!(holder.os_locked);
                assert_eq!(holder.pid, Some(std::process::id()));
            }
            other => panic!("{other:?}"),
        }
        assert!(lock.path().exists(), "a live holder's file stays");
        drop(guard);
        assert_eq!(lock.break_stale().expect("probe"), BreakStale::Free);
    }
}
