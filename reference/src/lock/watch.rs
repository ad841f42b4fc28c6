//! Waking a waiter when the holder of the lock file drops its OS lock, with a deadline.
//!
//! The same wait serves a waiter behind others in line: each waiter holds the OS lock of
//! its ticket (`super::queue`) until it leaves the line or dies, so the waiter behind it
//! waits on that ticket as the first waiter waits on the lock file. Our waiters drop a
//! ticket after unlinking it, so the shared lock the request is then granted is on a file
//! nobody uses any more, as below.
//!
//! Our holders, Python's portalocker variant and .NET hold the OS lock of the lock file
//! for the whole hold, and drop it when they release or die. A shared `flock` request on
//! that file therefore blocks until the release, and the kernel wakes it then, as it wakes
//! a blocking `flock` waiter: the lock does not stand idle until a timer fires.
//!
//! The lock file, not the guard (`super::guard`), is what a waiter blocks on, because the
//! shared lock that the woken request is granted must exclude nobody: our holders unlink
//! the lock file before they close it, so the request is granted on a file the path no
//! longer names and nobody will lock again. The same request on the guard would be
//! granted on the file our next holder must lock exclusively, so that holder would find
//! the guard taken and queue behind a mere observer, and an observer stopped (Ctrl-Z) in
//! that moment would keep all of ours out. Where the lock file is still named when the
//! request is granted (its holder died, or released its OS lock before removing the file,
//! as portalocker does, or had not locked it yet), the shared lock is as brief as the one
//! a stale-file probe (`super::stale`) takes, which every SDK already tolerates.
//!
//! The OS has no timeout for that request, and a waiter has a deadline. So a helper
//! thread makes the request and the waiter waits for its word on a condition variable,
//! with a timeout. A waiter that stops waiting (its deadline, or the periodic look at the
//! lock path, see [`LOOK`]) leaves the helper blocked; the helper is woken by the
//! release like any waiter, closes the file at once, which drops its shared lock, and
//! waits for the next request or exits after [`IDLE`]. So:
//! - there is at most one helper per lock path and process, and it is blocked only while
//!   the holder it waits for holds the file's OS lock;
//! - it never keeps a lock: it closes the file as soon as the request is granted;
//! - while it is blocked on one file, another request of this process for the same file
//!   shares its wait, and a request for another file (only when a holder keeps an OS lock
//!   on a file that was unlinked under it, see the module documentation of `lock`) is
//!   refused, and its waiter polls instead.
//!
//! Unix only. On Windows, a handle on a lock file that its holder opened with
//! `FILE_FLAG_DELETE_ON_CLOSE` keeps the file pending deletion after the holder closes
//! it, and every create of the lock path fails until that handle closes too; waiters
//! there poll, as before.

use std::{
    collections::HashMap,
    fs::File,
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use super::lock;

use super::stale::open_existing;

/// How long a waiter blocks before it looks at the lock path again, although no release
/// woke it. The wake-up is what makes hand-off fast; this look is the safety net for
/// what the OS lock does not tell: a lock file replaced under a holder that keeps the OS
/// lock of the old one, and a helper that cannot run (a process forked from one whose
/// helper was blocked has no such thread).
pub(super) const LOOK: Duration = Duration::from_millis(10);

/// How long an idle helper thread stays for the next request before it exits.
const IDLE: Duration = Duration::from_secs(1);

/// What [`until_released`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waited {
    /// The holder released, or `until` passed: look at the lock again.
    Yes,
    /// It could not wait here (the file is gone, or the helper is busy with another file,
    /// or cannot run): the caller pauses as it did without this.
    No,
}

/// The helper of one lock path in this process, and the requests it serves.
#[derive(Debug, Default)]
struct Watch {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// The process this state belongs to: a forked child inherits the state but not the
    /// thread, and starts afresh.
    pid: u32,
    /// A helper thread runs.
    helper: bool,
    /// The file of the request the helper has not picked up yet.
    request: Option<File>,
    /// The file (device, inode) of the pending request, until it is served.
    pending: Option<(u64, u64)>,
    /// Requests made, and requests served; each request is served in order, so a waiter
    /// holding request `n` is done once `served >= n`.
    asked: u64,
    served: u64,
    /// The OS refused a blocking shared lock (not a signal): this file system cannot
    /// wait for a release, and every waiter polls.
    unsupported: bool,
}

/// Waits until the holder of the lock file at `path` drops its OS lock, or until `until`.
///
/// `key` is the lock's in-process key (`super::local::key_for`). Call it when a live
/// holder that takes OS locks holds the file; with a holder that takes none (MSAL Node,
/// Python's `filelock` variant) it returns at once, which the caller's next look tells.
pub(super) fn until_released(key: &Path, path: &Path, until: Instant) -> Waited {
    // The file must be opened here, not in the helper: the waiter must know that it
    // waits on the file it just saw held, and the helper cannot fail on its behalf.
    let Ok(file) = open_existing(path) else {
        return Waited::No;
    };
    let Ok(id) = file.metadata().map(|meta| (meta.dev(), meta.ino())) else {
        return Waited::No;
    };
    let watch = watch_for(key);
    let mut state = lock(&watch.state);
    let pid = std::process::id();
    if state.pid != pid {
        *state = State {
            pid,
            ..State::default()
        };
    }
    if state.unsupported {
        return Waited::No;
    }
    let mine = match state.pending {
        // The helper already waits on this very file: share its wait.
        Some(pending) if pending == id => state.asked,
        Some(_) => return Waited::No,
        None => {
            state.asked += 1;
            state.request = Some(file);
            state.pending = Some(id);
            if !state.helper {
                let helper = Arc::clone(&watch);
                let spawned = std::thread::Builder::new()
                    .name("cache-lock-watch".into())
                    .spawn(move || serve(&helper));
                if spawned.is_err() {
                    state.asked -= 1;
                    state.request = None;
                    state.pending = None;
                    return Waited::No;
                }
                state.helper = true;
            }
            watch.changed.notify_all();
            state.asked
        }
    };
    while state.served < mine {
        let now = Instant::now();
        if now >= until {
            break;
        }
        state = watch
            .changed
            .wait_timeout(state, until - now)
            .map(|(state, _)| state)
            .unwrap_or_else(|poisoned| poisoned.into_inner().0);
    }
    Waited::Yes
}

/// The helper thread: serves requests one at a time; exits after [`IDLE`] without one.
fn serve(watch: &Watch) {
    let mut state = lock(&watch.state);
    loop {
        let Some(file) = state.request.take() else {
            let (next, timeout) = watch
                .changed
                .wait_timeout(state, IDLE)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            if timeout.timed_out() && state.request.is_none() {
                state.helper = false;
                return;
            }
            continue;
        };
        drop(state);
        // Blocks while anyone holds the file's exclusive OS lock.
        let granted = file.lock_shared();
        super::step("helper granted");
        let mut served = lock(&watch.state);
        if let Err(e) = granted
            && e.kind() != io::ErrorKind::Interrupted
        {
            tracing::debug!(error = %e, "cannot wait for the cache lock's release; polling");
            served.unsupported = true;
        }
        served.pending = None;
        served.served += 1;
        // Unlocked before the notification, so that the woken waiter does not block on
        // the mutex we still hold.
        drop(served);
        watch.changed.notify_all();
        // The waiter first, the close after: the close is off the hand-off's path, and
        // the shared lock it drops is on a file the path no longer names (see above) or
        // one a probe may find locked for as long as a prober's lock. Never kept longer.
        drop(file);
        state = lock(&watch.state);
    }
}

/// The watch of one lock path; one per path for the life of the process, as the slots
/// of `super::local` (the helper thread itself exits when idle).
fn watch_for(key: &Path) -> Arc<Watch> {
    static WATCHES: OnceLock<Mutex<HashMap<PathBuf, Arc<Watch>>>> = OnceLock::new();
    let mut watches = lock(WATCHES.get_or_init(Default::default));
    Arc::clone(watches.entry(key.to_path_buf()).or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    /// The helper wakes the waiter at the release, and a waiter that gave up leaves no
    /// lock behind: the holder can lock the file again once the helper was granted it.
    #[test]
    fn a_release_wakes_the_waiter_and_a_given_up_wait_keeps_no_lock() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("w.lockfile");
        let key = dir.path().join("w.lockfile.key");
        let holder = File::create(&path)?;
        holder.lock()?;
        // Gives up while the holder holds it.
        let short = Instant::now() + Duration::from_millis(30);
        assert_eq!(until_released(&key, &path, short), Waited::Yes);
        assert!(Instant::now() >= short);
        // A second waiter shares the helper's wait on the same file.
        let deadline = far();
        let woken = std::thread::spawn({
            let (key, path) = (key.clone(), path.clone());
            move || until_released(&key, &path, deadline)
        });
        std::thread::sleep(Duration::from_millis(20));
        assert!(!woken.is_finished(), "woke while the holder held the lock");
        holder.unlock()?;
        assert_eq!(woken.join().expect("no panic"), Waited::Yes);
        // Woken by the helper's grant, not by its deadline 20 s away: one request, made by
        // the waiter that gave up and shared by the second, served once.
        assert!(Instant::now() < deadline, "woken by the deadline");
        {
            let watch = watch_for(&key);
            let state = lock(&watch.state);
            assert_eq!((state.asked, state.served), (1, 1), "one shared request");
        }
        // The helper closed its file: the OS lock is free for an exclusive holder.
        let again = File::open(&path)?;
        let until = Instant::now() + Duration::from_secs(5);
        while again.try_lock().is_err() {
            assert!(Instant::now() < until, "the helper kept its shared lock");
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// The helper waits on one file at a time: a waiter for another file (a holder that
    /// kept the OS lock of a lock file replaced under it) polls instead of sharing a wait
    /// that the other file's release would end.
    #[test]
    fn a_wait_on_another_file_is_refused_while_the_helper_is_busy() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let key = dir.path().join("x.lockfile.key");
        let (old, new) = (dir.path().join("old"), dir.path().join("new"));
        let (old_holder, new_holder) = (File::create(&old)?, File::create(&new)?);
        old_holder.lock()?;
        new_holder.lock()?;
        // The helper now blocks on `old` for a waiter that gave up.
        let short = Instant::now() + Duration::from_millis(10);
        assert_eq!(until_released(&key, &old, short), Waited::Yes);
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            old_holder.unlock()
        });
        assert_eq!(until_released(&key, &new, far()), Waited::No);
        releaser.join().expect("no panic")?;
        Ok(())
    }

    #[test]
    fn a_missing_file_is_not_waited_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gone.lockfile");
        assert_eq!(until_released(&path, &path, far()), Waited::No);
    }
}
