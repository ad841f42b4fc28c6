//! In-process serialisation: one holder per lock path in this process, first come first
//! served.
//!
//! The OS lock does not order threads: `flock` locks of two descriptors conflict even in
//! one process, but the MSAL lock files of the other SDKs take no OS lock at all and an
//! `O_EXCL` create does not tell which thread of a process created the file. So every
//! [`FileLock`](super::FileLock) first takes the slot of its path here, keyed by the
//! absolute path with symlinks of the directory resolved, so that two `FileLock` values
//! for one file (relative and absolute, through a symlinked directory) share a slot.
//!
//! A slot also keeps this process's current run of back-to-back holds of its path (see
//! [`Run`]). Slots are never removed: one small entry per lock path the process has ever
//! used.

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, OnceLock},
    time::{Duration, Instant},
};

use super::lock;

/// The slot of one lock path: who holds it, who queues, and fairness state.
#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
    turn: Condvar,
}

#[derive(Debug, Default)]
struct SlotState {
    held: bool,
    queue: VecDeque<u64>,
    next_ticket: u64,
    run: Run,
}

/// This process's current run of back-to-back holds of one lock path.
///
/// Handing the lock to another process costs tens of microseconds and two wake-ups of
/// its first waiter (see `super::watch`), against a few microseconds for taking it again
/// here, and its waiters behind the first poll; so a process that releases and at once
/// acquires again
/// keeps the lock, without queueing, while its run is young: while the run so far plus
/// the last hold fits in [`SLICE`].
/// Short holds thus go in batches of up to [`SLICE`], which keeps the hand-offs rare and
/// the throughput of several processes near that of one; holds longer than half the
/// slice go one per turn. After the slice the process queues behind the waiters of other
/// processes like anyone else (see `super::queue`), so a waiter waits for at most one
/// slice, plus one hold, per process ahead of it.
#[derive(Debug, Default, Clone, Copy)]
struct Run {
    /// When the first hold of the run began.
    started: Option<Instant>,
    /// When the current hold began.
    held_since: Option<Instant>,
    /// How long the last hold lasted.
    last_hold: Duration,
    /// Whether the current hold continued the run (it was taken again without waiting).
    continued: bool,
}

impl Run {
    /// Whether the run so far plus the last hold fits in [`SLICE`].
    fn is_young(&self) -> bool {
        self.started
            .is_some_and(|started| started.elapsed() + self.last_hold < SLICE)
    }
}

/// How long a process keeps the lock through back-to-back holds while others may wait.
///
/// Measured with four processes (benchmarks `lock` and `contention`): a waiter then waits
/// about three slices; at 8 ms that was 24 ms at the 99th percentile, and one slow save
/// (30 ms fsyncs happen on a busy disk) took the longest wait past 50 ms. At 5 ms it is
/// 15 ms, and the hand-offs (a few hundred microseconds each when waiters polled, tens
/// since the first waiter is woken by the release) cost only a few percent of the
/// throughput.
pub(super) const SLICE: Duration = Duration::from_millis(5);

/// The slot of one path, held: dropping it lets the next thread of this process in.
#[derive(Debug)]
pub(super) struct LocalGuard {
    slot: Arc<Slot>,
}

/// Takes the slot of `key` (see [`key_for`]), waiting until `deadline`. `None` when
/// another thread of this process still holds it at the deadline.
pub(super) fn acquire(key: &Path, deadline: Instant) -> Option<LocalGuard> {
    let slot = slot_for(key);
    let mut state = lock(&slot.state);
    if !state.held && state.queue.is_empty() {
        state.held = true;
        drop(state);
        return Some(LocalGuard { slot });
    }
    let ticket = state.next_ticket;
    state.next_ticket = state.next_ticket.wrapping_add(1);
    state.queue.push_back(ticket);
    loop {
        if !state.held && state.queue.front() == Some(&ticket) {
            state.queue.pop_front();
            state.held = true;
            drop(state);
            return Some(LocalGuard { slot });
        }
        let now = Instant::now();
        if now >= deadline {
            state.queue.retain(|t| *t != ticket);
            // The thread behind us may be first now.
            slot.turn.notify_all();
            return None;
        }
        state = slot
            .turn
            .wait_timeout(state, deadline - now)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner().0);
    }
}

impl LocalGuard {
    /// Whether this process's run is young enough to take the lock again without
    /// queueing (see [`Run`]).
    pub(super) fn in_run(&self) -> bool {
        lock(&self.slot.state).run.is_young()
    }

    /// Records that this process now holds the cross-process lock; `continued` says that
    /// it took it again within its run, without waiting.
    pub(super) fn on_acquired(&self, continued: bool) {
        let mut state = lock(&self.slot.state);
        let now = Instant::now();
        let continued = continued && state.run.started.is_some();
        if !continued {
            state.run.started = Some(now);
        }
        state.run.continued = continued;
        state.run.held_since = Some(now);
    }

    /// Records the release of the cross-process lock. When the hold continued a run that
    /// the next acquire could still continue, returns the run's end at the latest (its
    /// start plus [`SLICE`]; [`in_run`](LocalGuard::in_run) turns false by then): until
    /// then the release may keep the lock file's OS lock (see `super::keep`). The same
    /// for every release of a run, so that the timer that drops it is set once per run.
    pub(super) fn on_released(&self) -> Option<Instant> {
        let mut state = lock(&self.slot.state);
        if let Some(since) = state.run.held_since.take() {
            state.run.last_hold = since.elapsed();
        }
        let run = state.run;
        (run.continued && run.is_young()).then_some(run.started? + SLICE)
    }
}

impl Drop for LocalGuard {
    fn drop(&mut self) {
        let mut state = lock(&self.slot.state);
        state.held = false;
        drop(state);
        self.slot.turn.notify_all();
    }
}

/// The registry key of a lock path: absolute, with the directory's symlinks resolved when
/// the directory exists (the file itself need not exist).
pub(super) fn key_for(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir)
            .map(|dir| dir.join(name))
            .unwrap_or(absolute),
        _ => absolute,
    }
}

fn slot_for(key: &Path) -> Arc<Slot> {
    static SLOTS: OnceLock<Mutex<HashMap<PathBuf, Arc<Slot>>>> = OnceLock::new();
    let mut slots = lock(SLOTS.get_or_init(Default::default));
    Arc::clone(slots.entry(key.to_path_buf()).or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn a_second_taker_waits_and_times_out() {
        let key = PathBuf::from("/nonexistent/local-test-a.lockfile");
        let first = acquire(&key, far()).expect("free");
        let start = Instant::now();
        assert!(acquire(&key, Instant::now() + Duration::from_millis(50)).is_none());
        assert!(start.elapsed() >= Duration::from_millis(50));
        drop(first);
        assert!(acquire(&key, far()).is_some());
    }

    #[test]
    fn waiters_are_served_in_arrival_order() {
        let key = PathBuf::from("/nonexistent/local-test-b.lockfile");
        let first = acquire(&key, far()).expect("free");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for i in 0..4 {
            let (thread_key, order) = (key.clone(), Arc::clone(&order));
            threads.push(std::thread::spawn(move || {
                let guard = acquire(&thread_key, far());
                lock(&order).push(i);
                drop(guard);
            }));
            // Let thread i queue before thread i + 1.
            while lock(&slot_for(&key).state).queue.len() < i + 1 {
                std::thread::yield_now();
            }
        }
        drop(first);
        for t in threads {
            t.join().expect("no panic");
        }
        assert_eq!(*lock(&order), vec![0, 1, 2, 3]);
    }

    /// A guard of a key no other test uses.
    fn guard(name: &str) -> LocalGuard {
        acquire(
            &PathBuf::from(format!("/nonexistent/{name}.lockfile")),
            far(),
        )
        .expect("free")
    }

    fn ago(millis: u64) -> Instant {
        Instant::now() - Duration::from_millis(millis)
    }

    /// Moves the guard's run: begun at `started`, its last hold `last_hold` long.
    fn set_run(guard: &LocalGuard, started: Instant, last_hold: Duration) {
        let mut state = lock(&guard.slot.state);
        state.run.started = Some(started);
        state.run.last_hold = last_hold;
    }

    /// `check` true in one of five tries: a stall of a busy machine between two lines can
    /// age a run past the slice, never make an old run young.
    fn eventually(mut check: impl FnMut() -> bool) -> bool {
        (0..5).any(|_| check())
    }

    #[test]
    fn a_run_is_young_while_its_age_plus_the_last_hold_fits_the_slice() {
        let guard = guard("run-young");
        assert!(!guard.in_run(), "no hold yet, no run");
        assert!(
            eventually(|| {
                guard.on_acquired(false);
                guard.on_released();
                guard.in_run()
            }),
            "a short hold just now"
        );
        set_run(&guard, ago(3), Duration::from_millis(3));
        assert!(
            !guard.in_run(),
            "3 ms ago plus a hold of 3 ms is past the slice"
        );
        set_run(&guard, ago(6), Duration::ZERO);
        assert!(!guard.in_run(), "older than the slice");
    }

    #[test]
    fn the_last_hold_counts_against_the_run() {
        let guard = guard("run-hold");
        guard.on_acquired(false);
        // A hold as long as the slice: the next goes to a waiter.
        lock(&guard.slot.state).run.held_since = Some(ago(6));
        guard.on_released();
        assert!(!guard.in_run());
    }

    #[test]
    fn a_continued_hold_keeps_the_run_and_a_fresh_one_starts_it() {
        let guard = guard("run-continued");
        set_run(&guard, ago(6), Duration::ZERO);
        guard.on_acquired(true);
        assert!(!guard.in_run(), "continuing does not make an old run young");
        assert!(
            eventually(|| {
                guard.on_acquired(false);
                guard.in_run()
            }),
            "a hold after waiting starts a new run"
        );
    }

    /// Only a hold that continued a young run may keep the OS lock past its release, and
    /// only until the run ends.
    #[test]
    fn a_release_names_the_run_end_only_after_a_continued_hold() {
        let guard = guard("run-end");
        guard.on_acquired(false);
        assert_eq!(guard.on_released(), None, "the first hold of a run");
        assert!(
            eventually(|| {
                guard.on_acquired(false);
                guard.on_released();
                guard.on_acquired(true);
                let started = lock(&guard.slot.state).run.started;
                let end = guard.on_released();
                end.is_some() && end == started.map(|s| s + SLICE)
            }),
            "a continued hold in a young run"
        );
        set_run(&guard, ago(6), Duration::ZERO);
        guard.on_acquired(true);
        assert_eq!(guard.on_released(), None, "a continued hold of an old run");
    }

    #[test]
    fn keys_of_one_file_agree() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let via_dot = dir.path().join(".").join("x.lockfile");
        assert_eq!(key_for(&via_dot), key_for(&dir.path().join("x.lockfile")));
        #[cfg(unix)]
        {
            let real = dir.path().join("real");
            std::fs::create_dir(&real)?;
            std::os::unix::fs::symlink(&real, dir.path().join("link"))?;
            assert_eq!(
                key_for(&dir.path().join("link").join("x.lockfile")),
                key_for(&real.join("x.lockfile")),
                "a symlinked directory is resolved"
            );
        }
        Ok(())
    }
}
