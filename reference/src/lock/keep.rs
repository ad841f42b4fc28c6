//! Keeping the OS lock of our lock file through a run of holds (Unix).
//!
//! The first waiter in line sleeps until the holder drops the OS lock of the lock file
//! (`super::watch`). A holder in a run of back-to-back holds (`super::local::Run`)
//! releases and takes the lock again within microseconds. When each of those releases
//! dropped the OS lock, the first waiter woke at every one of them, only to find the lock
//! taken again: with four processes on two cores, about one wake-up per hold, each a
//! round of system calls taken from the holder's CPU.
//!
//! So the release of a hold that continued a run, while the run is young enough for the
//! next acquire to continue it, removes the lock file as always but keeps the OS lock of
//! the file, our stock (`super::create`), now unlinked:
//! - the next acquire links the same stock, whose OS lock it already holds;
//! - an acquire that has to wait drops it first (one outside the run joins the line
//!   behind the waiters, and so waits, whenever anyone is in line);
//! - without an acquire, a timer drops it when the run ends, at most
//!   [`SLICE`](super::local::SLICE) after the run began.
//!
//! This keeps nobody out of the lock: the lock file is gone from its path, so the lock is
//! free to whoever looks, the other SDKs included. Only a waiter already asleep on this
//! very file's OS lock sleeps on: ours look at the path again within `watch::LOOK`
//! anyway, and a process of another SDK blocked on that lock (Python's portalocker after
//! its fall-through, on a file that was unlinked under it) is let go by the timer.
//!
//! The first hold of a run drops its OS lock at once, as before: a process that takes the
//! lock once and goes (the usual application) never makes a waiter wait for the timer.

use std::{fs::File, sync::Arc};
#[cfg(unix)]
use std::{
    sync::{Condvar, Mutex, PoisonError},
    time::{Duration, Instant},
};

#[cfg(unix)]
use super::lock;

/// How long an idle timer thread stays for the next kept lock before it exits.
#[cfg(unix)]
const IDLE: Duration = Duration::from_secs(1);

/// The kept OS lock of one [`FileLock`](super::FileLock) and its clones, and its timer.
/// Nothing is ever kept on Windows, where the release closes the lock file (which deletes
/// it).
#[derive(Debug, Default)]
pub(super) struct Keeper {
    #[cfg(unix)]
    inner: Arc<Inner>,
}

#[cfg(unix)]
#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    changed: Condvar,
}

#[cfg(unix)]
#[derive(Debug, Default)]
struct State {
    /// The process this state belongs to: a forked child inherits the state but not the
    /// timer thread, and the kept lock is its parent's (see `Keeper::state`).
    pid: u32,
    /// The file whose OS lock is kept, and when the timer drops it.
    kept: Option<(Arc<File>, Instant)>,
    /// A timer thread runs.
    timer: bool,
    /// The timer thread waits with nothing kept, for as long as [`IDLE`].
    idle: bool,
}

impl Keeper {
    /// Keeps the OS lock of `file`, which the caller has just released the lock file of,
    /// until `until`, when the timer drops it unless [`take`](Keeper::take) took it back.
    /// `false` when no timer thread can be started: the caller then drops it itself.
    #[cfg(unix)]
    pub(super) fn keep(&self, file: &Arc<File>, until: Instant) -> bool {
        let mut state = self.state();
        if !state.timer {
            let inner = Arc::clone(&self.inner);
            let spawned = std::thread::Builder::new()
                .name("cache-lock-keep".into())
                .spawn(move || run_timer(&inner));
            if spawned.is_err() {
                return false;
            }
            state.timer = true;
        }
        // One file at a time. Every acquire takes the kept one back before its hold, so
        // none is left here at a release; were one, it is dropped rather than kept for good.
        if let Some((earlier, _)) = state.kept.replace((Arc::clone(file), until)) {
            unlock(&earlier);
        }
        // Only an idle timer needs waking: the releases of one run keep the lock until the
        // same end, and a later run ends later, so a timer that waits for an earlier end
        // wakes in time and waits again. The timer is thus woken once per run, not at
        // every release.
        let wake = state.idle;
        drop(state);
        if wake {
            self.inner.changed.notify_all();
        }
        true
    }

    /// Takes back the kept OS lock, still held, if the timer has not dropped it yet.
    pub(super) fn take(&self) -> Kept {
        #[cfg(unix)]
        return Kept(self.state().kept.take().map(|(file, _)| file));
        #[cfg(not(unix))]
        Kept(None)
    }

    /// The state, reset in a forked child: what it inherited is its parent's. Forgetting
    /// the parent's kept file drops no lock (only an unlock or the last close of the
    /// parent's open file does), and the parent's timer drops it.
    #[cfg(unix)]
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        let mut state = lock(&self.inner.state);
        let pid = std::process::id();
        if state.pid != pid {
            *state = State {
                pid,
                ..State::default()
            };
        }
        state
    }
}

/// A kept OS lock taken back by an acquire: dropped (unlocked) unless the acquire adopts
/// it as the lock of its new hold.
#[derive(Debug)]
#[must_use]
pub(super) struct Kept(Option<Arc<File>>);

impl Kept {
    /// The acquire has linked `file` as the lock file: when it is the kept one, its OS lock
    /// is now the new hold's; any other kept lock is dropped.
    pub(super) fn adopt(&mut self, file: &Arc<File>) {
        if let Some(kept) = self.0.take()
            && !Arc::ptr_eq(&kept, file)
        {
            unlock(&kept);
        }
    }

    /// Drops the kept OS lock now, before the acquire waits or queues.
    pub(super) fn release(&mut self) {
        if let Some(kept) = self.0.take() {
            unlock(&kept);
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.release();
    }
}

/// The timer thread: drops the kept lock when its time comes; exits after [`IDLE`] with
/// nothing kept.
#[cfg(unix)]
fn run_timer(inner: &Inner) {
    let mut state = lock(&inner.state);
    loop {
        let now = Instant::now();
        let wait = match &state.kept {
            Some((_, until)) if *until <= now => {
                if let Some((file, _)) = state.kept.take() {
                    unlock(&file);
                }
                continue;
            }
            Some((_, until)) => *until - now,
            None => IDLE,
        };
        state.idle = state.kept.is_none();
        let (next, timeout) = inner
            .changed
            .wait_timeout(state, wait)
            .unwrap_or_else(PoisonError::into_inner);
        state = next;
        if timeout.timed_out() && state.kept.is_none() {
            state.timer = false;
            return;
        }
    }
}

/// Drops the OS lock of our lock file's stock. The stock stays open for the next acquire,
/// so a failed unlock would keep the lock until the `FileLock` goes: say so.
pub(super) fn unlock(file: &File) {
    if let Err(e) = file.unlock() {
        tracing::warn!(error = %e, "unlocking the cache lock file failed");
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Whether another open file of the same path can take its OS lock now (and leaves it
    /// free again).
    fn free(path: &std::path::Path) -> bool {
        let other = File::open(path).expect("open");
        other.try_lock().is_ok()
    }

    #[test]
    fn a_kept_lock_is_dropped_when_its_time_comes() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("stock");
        let file = Arc::new(File::create(&path)?);
        file.lock()?;
        let keeper = Keeper::default();
        let until = Instant::now() + Duration::from_millis(50);
        assert!(keeper.keep(&file, until));
        assert!(!free(&path), "dropped before its time");
        let give_up = Instant::now() + Duration::from_secs(10);
        while !free(&path) {
            assert!(Instant::now() < give_up, "never dropped");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(Instant::now() >= until);
        // Nothing is left to take back.
        let mut kept = keeper.take();
        assert!(kept.0.is_none());
        kept.release();
        Ok(())
    }

    /// The timer, idle once the first kept lock is dropped, is woken for the next one
    /// rather than left to its idle timeout.
    #[test]
    fn an_idle_timer_is_woken_for_the_next_kept_lock() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("stock");
        let file = Arc::new(File::create(&path)?);
        let keeper = Keeper::default();
        for _ in 0..2 {
            file.lock()?;
            let kept_at = Instant::now();
            assert!(keeper.keep(&file, kept_at + Duration::from_millis(20)));
            while !free(&path) {
                assert!(
                    kept_at.elapsed() < IDLE / 2,
                    "dropped only at the idle timeout"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    #[test]
    fn a_lock_taken_back_and_adopted_stays_held_and_any_other_is_dropped() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("stock");
        let file = Arc::new(File::create(&path)?);
        file.lock()?;
        let keeper = Keeper::default();
        assert!(keeper.keep(&file, Instant::now() + Duration::from_millis(20)));
        let mut kept = keeper.take();
        kept.adopt(&file);
        drop(kept);
        // Past the timer's time: the adopted lock is the caller's, and still held.
        std::thread::sleep(Duration::from_millis(60));
        assert!(!free(&path), "the timer dropped a lock taken back");
        // Taken back but not adopted (the acquire linked another file, or must wait):
        // dropped at once.
        let far = Instant::now() + Duration::from_secs(60);
        assert!(keeper.keep(&file, far));
        let mut kept = keeper.take();
        kept.adopt(&Arc::new(File::open(&path)?));
        assert!(free(&path), "a kept lock not adopted is still held");
        file.lock()?;
        assert!(keeper.keep(&file, far));
        drop(keeper.take());
        assert!(free(&path), "a kept lock dropped unadopted is still held");
        Ok(())
    }
}
