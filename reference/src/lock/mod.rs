//! The cross-process lock on `<cache path>.lockfile`, shared with the MSAL extensions of
//! the JS, Python and .NET SDKs.
//!
//! # Protocol
//!
//! To acquire, a process
//! 1. takes the in-process slot of the path, so threads and several [`FileLock`] values of
//!    one process queue first come first served (`local`);
//! 2. creates the lock file exclusively, mode 0600 — this is what excludes and is excluded
//!    by MSAL Node (`open(path, "wx+")`) and both Python `msal-extensions` variants
//!    (`open(path, "x")`). On Unix the file appears with its content: the content of step 4
//!    is written once per [`FileLock`] to a private file beside it, its stock, which each
//!    acquire hard-links to the lock path (`link` fails when the path exists, as `O_EXCL`
//!    does; see `create`); so a holder of ours killed at any point never leaves an empty
//!    lock file, which a waiter could only treat as stale after [`GRACE`], and an acquire
//!    and release change the directory twice, as the other SDKs' create and unlink do.
//!    Elsewhere, or where the file system has no hard links, it is `O_CREAT | O_EXCL` and
//!    step 4 follows;
//! 3. takes an exclusive OS lock on it ([`File::try_lock`]: `flock` on Unix, `LockFileEx`
//!    on Windows) — this is what excludes and is excluded by Python's portalocker variant,
//!    which after 5 s of failed creates opens the existing file and waits for its OS lock,
//!    and by .NET, which opens the file whatever exists and holds its OS lock. If that
//!    lock is busy right after our create, such a process got the file first: it is left
//!    alone (not unlinked), and we go back to waiting;
//! 4. writes `"<pid> <executable>"`, the format of Python `msal-extensions`.
//!
//! Before step 2 it also takes the OS lock of `<lock path>.guard`, a file that nobody
//! deletes, and holds it as long as the lock (`guard`; the file stays open between
//! acquires, so taking it is one `flock`). The other SDKs know nothing of it:
//! who holds the lock is still decided by the lock file. It is there because the lock
//! file can be deleted under its holder: Python's portalocker variant, after waiting 5 s,
//! takes the OS lock of whatever file it opened (one unlinked since, possibly) and on
//! release deletes whatever file the path names then, possibly ours while we hold it. The
//! next process of ours would then create a fresh lock file and walk in; the guard, which
//! the OS releases only when its holder closes it or dies, keeps it out. Python itself may
//! still overlap with us there: that is its own fall-through, which we cannot stop.
//!
//! To release, it unlinks the path if the path still names the file it holds (never
//! someone else's lock file), releases the guard, then drops the file's OS lock (Unix:
//! unlocks the stock, which stays open for the next acquire; Windows: closes the file,
//! which deletes it, and only then releases the guard). On Unix, a release inside a run
//! of back-to-back holds (see [Fair hand-off](#fair-hand-off)) keeps that OS lock of the
//! now unlinked stock until its next acquire or the run's end (`keep`): the lock is
//! free from the unlink on, but a waiter asleep on that OS lock is woken once per run
//! rather than once per hold.
//!
//! # Waking at the release
//!
//! The waiter whose turn it is (see below) sleeps until the release when the holder holds
//! the lock file's OS lock, as our holders, Python's portalocker variant and .NET do: it
//! asks the OS for a shared lock of that file, which the kernel grants when the holder
//! releases or dies, and then looks again at once (`watch`). The OS has no timeout for
//! that request, so a helper thread makes it and the waiter waits for its word with a
//! timeout: its deadline, and at most 10 ms (`watch::LOOK`) before it looks at the lock
//! path anyway. The helper keeps no lock and is at most one thread per lock path and
//! process. The request is on the lock file, not the guard, because our holder unlinks
//! the lock file before dropping its lock: the shared lock the request is granted is on a
//! file nobody uses any more, so it delays no one, where one on the guard would make our
//! next holder queue behind it. (Unix only: on Windows a waiter's handle would keep the
//! released file pending deletion, so waiters there poll.)
//!
//! A waiter behind others in line sleeps the same way until the waiter just ahead of it
//! leaves the line (or dies): that waiter holds its ticket's OS lock while it waits (see
//! below). So with several waiters, only the first is woken by a release, and each of
//! the others once per waiter ahead of it that takes the lock; and each still looks at
//! least every `watch::LOOK`, for stale files and for a first waiter that does not take
//! a free lock.
//!
//! The first waiter polls while the holder takes no OS lock (MSAL Node, Python's
//! `filelock` variant), whose release no OS lock tells, every 50 µs to 2 ms (`wake`)
//! rather than the 50–250 ms of the other SDKs. Each look also probes the existing file
//! (`stale`): a file whose holder is dead is removed and the lock taken, without ever
//! letting two live holders in.
//!
//! # Fair hand-off
//!
//! Waiters of this crate wait in line, first come first served, so that none is
//! overtaken again and again by processes that release and at once acquire again.
//!
//! The files, all beside the cache:
//! - `<lock path>`: the lock file above; the holder creates (links), writes and removes it.
//! - `.lockfile.<pid>-<random>.tmp` (Unix): the stock of each [`FileLock`] in use
//!   (0600), holding `"<pid> <executable>"`; removed when the `FileLock` is dropped, or,
//!   when its process died first, by the next release of a later process (`create`).
//! - `<lock path>.guard`: empty (0600); created by the first of our processes to need it
//!   and never removed; its OS lock is held with the lock.
//! - `<lock path>.queue/`: a directory (0700), created by the first waiter to join the
//!   line and, like the guard, never removed (removing it put a slow `rmdir` on the
//!   hand-off's path, see `queue`).
//! - `<lock path>.queue/<ns>-<pid>`: one empty ticket (0600) per waiting process,
//!   named by its arrival time; its waiter creates it, holds its OS lock while waiting,
//!   and removes it once it holds the lock file or gives up (`queue`).
//!
//! An acquirer whose process is not in a run (see below) joins the line at once when
//! anyone is in it; otherwise it tries the lock file, and joins the line as soon as it
//! has to wait. In line, only the first live ticket tries to create the lock file; the
//! others keep probing it, for stale files and for a stuck first waiter.
//!
//! A process that releases and acquires again at once keeps the lock without queueing
//! while its run of holds is younger than a slice of 5 ms (`local::Run`); that batches
//! short holds, whose hand-off to another process would cost more than the hold. After
//! the slice it queues behind the processes already waiting. A waiter thus waits at most
//! about one slice (or one hold, if longer) per process ahead of it, plus a hand-off
//! (a wake-up, or a poll interval where the holder takes no OS lock) per process.
//!
//! Why it is safe whoever is killed, whenever: the line only orders our waiters; who
//! holds the lock is still decided by the exclusive create and the OS lock of the lock
//! file alone, so no state of the line can let two holders in. And no state of the line
//! can block anyone for long:
//! - a waiter killed in line leaves a ticket whose OS lock the OS has dropped; the next
//!   waiter behind it sees that and removes the ticket (killed between creating its
//!   ticket and locking it, likewise);
//! - a waiter that is first but does not run (stopped, starved of CPU) is passed: a
//!   waiter that sees the lock free for 50 ms competes for it anyway (`Stall`);
//! - a directory or ticket that cannot be created, read or locked (read-only directory,
//!   no OS locks) makes the waiter compete for the lock file as if there were no line;
//! - killed holders are recovered by the stale-file probe, as before; the OS drops their
//!   OS locks, which wakes a waiter sleeping on them at once.
//! - a waiter killed or stopped while its helper waits for the holder's OS lock leaves at
//!   most that request, which the OS drops with the process or grants at the release; the
//!   helper of a live process closes what it was granted at once;
//! - an OS lock kept through a run (`keep`) is on a file the lock path no longer names, so
//!   it keeps nobody out; a timer drops it at the run's end, and the OS with the process.
//!
//! Processes of the other SDKs know nothing of the line: they compete with its first
//! waiter, as before, and their files are never touched by it.
//!
//! # What the other SDKs can still break
//!
//! Their own protocols have races this crate cannot close for them: Python's portalocker
//! variant, after waiting 5 s, takes the OS lock of a file that may already have been
//! unlinked and later removes whatever file the path then names; .NET on Unix locks
//! whatever file it opened, possibly one unlinked since. Our holders finish quickly, well
//! within those 5 s, so these paths are only reached when a holder really hangs.
//!
//! # Windows
//!
//! Only std is used. Our lock files are opened with `FILE_FLAG_DELETE_ON_CLOSE`, as .NET
//! does, so the file disappears when its holder closes it or dies; release is the close.
//! Pid liveness is not available, so a file with a parseable pid and no OS lock (an MSAL
//! Node or Python `filelock` holder, or one that died) counts as held until its holder
//! removes it; a file without a pid is removed after [`GRACE`] as on Unix. Waiters do not
//! append to the lock file there (the OS lock is mandatory and forbids it); the line works
//! as on Unix, its tickets being opened with std's default sharing, which allows their
//! removal while open.

mod break_stale;
mod create;
mod file_id;
mod guard;
pub(crate) mod holder;
mod keep;
mod local;
mod queue;
mod stale;
mod wake;
#[cfg(unix)]
mod watch;

use std::{
    fmt,
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

pub use break_stale::BreakStale;
pub use holder::Liveness;
pub use stale::{GRACE, Holder};

use crate::{
    error::{Error, ErrorKind, Result},
    persistence::HeldLock,
};
use create::{StockSlot, create_with_content, lock_file_content};
use file_id::same_file;
use guard::{Guard, GuardFile};
use local::LocalGuard;
use queue::Queue;
use stale::Probe;
use wake::{POLL_MAX_FIRST, Pause};

/// Locks a mutex of this module's in-process state, also after a panic elsewhere: every
/// update of that state is a few plain assignments that cannot panic, so it stays
/// consistent.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Marks a step of a hand-off, as a trace event (`step` field), so that a recording
/// subscriber can time each step inside real hand-offs (the bench `handoff` does).
fn step(step: &'static str) {
    tracing::trace!(step, "cache lock hand-off");
}

/// A lock file shared with the MSAL extensions of the other SDKs.
///
/// Cheap to create and clone; it touches nothing until [`acquire`](FileLock::acquire).
/// All `FileLock` values of one path exclude each other, in one process and across
/// processes; see the [module documentation](self) for the protocol.
///
/// A forked child may use the lock (it then takes it as a process of its own) when it was
/// forked by a process with one thread, or at a moment when no other thread was inside a
/// `FileLock` call: as with any library that keeps a process-wide mutex, a lock that
/// another thread held at the fork stays held in the child, whose `acquire` then waits
/// for it for good.
#[derive(Debug, Clone)]
pub struct FileLock {
    path: PathBuf,
    /// What the lock sets up once and its clones share.
    shared: Arc<Shared>,
}

/// The state of a [`FileLock`] that is set up on first use, once for it and its clones.
#[derive(Debug, Default)]
struct Shared {
    /// The in-process registry key (the directory may not exist before).
    key: OnceLock<PathBuf>,
    /// Orphaned temporary files beside the lock are swept once, after a release.
    swept: OnceLock<()>,
    /// `<lock path>.guard`, kept open between acquires (see `guard`).
    guard: GuardFile,
    /// The private file whose links are our lock files (see `create`).
    stock: StockSlot,
    /// The stock's OS lock, kept between the holds of a run (see `keep`).
    keeper: keep::Keeper,
}

/// What is at a lock path now, as [`FileLock::inspect`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// No lock file.
    Free,
    /// A live holder.
    Held(Holder),
    /// A lock file nobody holds any more, and why; the next [`FileLock::acquire`] removes
    /// it.
    Stale(Holder, &'static str),
}

impl FileLock {
    /// The lock at `path` (conventionally `<cache path>.lockfile`). Touches nothing.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileLock {
            path: path.into(),
            shared: Arc::default(),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the lock, waiting at most `wait`.
    ///
    /// - Free: returns at once with the lock file created, OS-locked and holding
    ///   `"<pid> <executable>"`.
    /// - Held by another thread of this process, through this or another `FileLock` of
    ///   the same path: waits its turn; threads are served in arrival order.
    /// - Held by another process (this crate or any MSAL SDK): waits, and takes the lock
    ///   when the holder releases it: woken by the release when the holder holds the lock
    ///   file's OS lock (this crate, Python's portalocker variant, .NET; Unix), within a
    ///   poll interval of at most 2 ms otherwise. Waiters of this crate
    ///   take turns first come first served; a process taking the lock again right after
    ///   releasing it goes behind them once it has held it for a slice of 5 ms (see
    ///   [Fair hand-off](self#fair-hand-off)).
    /// - Left behind by a holder that died (its pid no longer runs, or now names a later
    ///   process, or the file names no holder and is older than [`GRACE`]): the file is
    ///   removed, with a warning logged, and the lock taken — within a poll interval of the
    ///   holder's death, or of the grace period for a holder that died before writing
    ///   its pid.
    /// - `wait` runs out: `Err` of kind [`LockTimeout`](ErrorKind::LockTimeout) naming
    ///   the lock file and, when known, the holder's pid and whether it runs.
    /// - The directory does not exist, is not writable, or the lock path is not a regular
    ///   file: `Err` of the kind of the OS error (see [`Error::io`]), without waiting.
    pub fn acquire(&self, wait: Duration) -> Result<FileLockGuard> {
        let start = Instant::now();
        let deadline = start
            .checked_add(wait)
            .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 3600));
        let Some(local) = local::acquire(self.key(), deadline) else {
            return Err(self.timeout(wait, Seen::ThisProcess));
        };
        let queue = Queue::for_lock(&self.path);
        let in_run = local.in_run();
        // The OS lock our last release kept: ours again if we take the lock at once
        // (`adopt`), dropped before we wait (`release`), since a waiter may sleep on it.
        let mut kept = self.shared.keeper.take();
        // Outside a run, the line comes first: join it when anyone is in it.
        let mut ticket = if !in_run && queue.has_waiters() {
            queue.join(deadline)
        } else {
            None
        };
        let mut joined = ticket.is_some();
        let mut pause = Pause::new();
        let mut stall = Stall::default();
        let mut waited = false;
        let mut retried_late = false;
        let mut seen = Seen::Nothing;
        // Once first in line, first until we leave: later tickets sort after ours.
        let mut first = false;
        // The live ticket just ahead of ours, while we are not first.
        let mut ahead = None;
        loop {
            let my_turn = match &ticket {
                None => true,
                Some(ticket) => {
                    if !first {
                        ahead = queue.ahead_of(ticket);
                        first = ahead.is_none();
                    }
                    first || stall.overdue()
                }
            };
            // Our other processes first: a lock file deleted under its holder (see the
            // module documentation) must not let a second of ours in.
            let guard = if my_turn {
                self.shared.guard.try_take(&self.path)?
            } else {
                None
            };
            // Whether the holder seen this time holds the OS lock of the lock file, so that
            // its release can wake us (`watch`).
            let mut holder_locks = false;
            let probe = if let Some(guard) = guard {
                step("guard taken");
                match create_with_content(&self.path, &self.shared.stock) {
                    Ok((file, written)) => {
                        step("lock file created");
                        kept.adopt(&file);
                        if let Some(file) = self.take_created(file, written, deadline)? {
                            step("OS lock taken");
                            // Leave the line only once holding the lock, so that nobody
                            // behind us takes our turn.
                            drop(ticket);
                            step("left the line");
                            local.on_acquired(in_run && !waited);
                            return Ok(FileLockGuard {
                                path: self.path.clone(),
                                shared: Arc::clone(&self.shared),
                                file: Some(file),
                                guard: Some(guard),
                                local: Some(local),
                                pid: std::process::id(),
                            });
                        }
                        seen = Seen::LostCreated;
                        None
                    }
                    Err(e) if is_taken(&e) => Some(self.probe()?),
                    Err(e) => return Err(Error::io("create lock file", &self.path, e)),
                }
            } else if my_turn {
                // Another of our processes holds the lock, whatever the lock file says; its
                // file, when there, names it for the timeout message.
                seen = match self.probe()? {
                    Probe::Busy(holder) | Probe::Stale(holder, _) => {
                        holder_locks = holder.os_locked;
                        Seen::Holder(holder)
                    }
                    Probe::Vanished | Probe::Removed(_) => Seen::OurGuard,
                };
                stall.saw_held();
                None
            } else {
                Some(self.probe()?)
            };
            waited = true;
            match probe {
                Some(Probe::Vanished | Probe::Removed(_)) => {
                    stall.saw_free();
                    // Gone: create again at once. Past the deadline only once, so that a
                    // zero wait still takes a lock whose stale file it just removed.
                    if my_turn && (Instant::now() < deadline || !retried_late) {
                        retried_late |= Instant::now() >= deadline;
                        pause.reset();
                        continue;
                    }
                    if !my_turn {
                        seen = Seen::Queued;
                    }
                }
                Some(Probe::Busy(holder) | Probe::Stale(holder, _)) => {
                    stall.saw_held();
                    holder_locks = holder.os_locked;
                    seen = Seen::Holder(holder);
                }
                None => {}
            }
            // Waiting now: a waiter asleep on the OS lock we kept must not sleep through it.
            kept.release();
            let mut my_turn = my_turn;
            if !joined {
                joined = true;
                ticket = queue.join(deadline);
                // Whether we are first is learnt now, before the wait, rather than after
                // the release that ends it, where it would delay taking the lock.
                if let Some(ticket) = &ticket {
                    ahead = queue.ahead_of(ticket);
                    first = ahead.is_none();
                    my_turn = first;
                }
            }
            if Instant::now() >= deadline {
                return Err(self.timeout(wait, seen));
            }
            // The waiter whose turn it is sleeps until the holder's release when the holder
            // holds an OS lock (ours, portalocker, .NET); a waiter behind others in line
            // sleeps until the waiter just ahead leaves the line; the others, and every
            // waiter of a holder without one (MSAL Node, Python's `filelock`), poll.
            if my_turn && holder_locks && self.until_released(&self.path, deadline) {
                step("woken");
                pause.reset();
            } else if let (false, Some(ahead)) = (my_turn, &ahead)
                && self.until_released(ahead, deadline)
            {
                pause.reset();
            } else {
                pause.wait(deadline, my_turn);
            }
        }
    }

    /// Blocks until the holder of `file` (the lock file, or the ticket of the waiter
    /// ahead of ours) drops its OS lock, for at most `watch::LOOK` and never past
    /// `deadline`; `false` when it cannot (see `watch`).
    #[cfg(unix)]
    fn until_released(&self, file: &Path, deadline: Instant) -> bool {
        let until = deadline.min(Instant::now() + watch::LOOK);
        watch::until_released(self.key(), file, until) == watch::Waited::Yes
    }

    /// Waiters poll on Windows (see `watch`).
    #[cfg(not(unix))]
    fn until_released(&self, _file: &Path, _deadline: Instant) -> bool {
        false
    }

    /// What is at the lock path now: nothing, a live holder, or a stale file. Removes
    /// nothing.
    ///
    /// Probing takes the file's OS lock for a moment when it is free (that is how a live
    /// holder that takes OS locks is told apart); an acquirer that creates the file in
    /// that moment waits for it, as it waits for any prober.
    pub fn inspect(&self) -> Result<LockState> {
        let probe = stale::probe(&self.path, false)
            .map_err(|e| Error::io("inspect lock file", &self.path, e))?;
        Ok(match probe {
            Probe::Vanished => LockState::Free,
            Probe::Busy(holder) => LockState::Held(holder),
            Probe::Stale(holder, reason) => LockState::Stale(holder, reason),
            // Not produced without `remove`; mapped for completeness.
            Probe::Removed(holder) => LockState::Stale(holder, "removed"),
        })
    }

    fn key(&self) -> &Path {
        self.shared.key.get_or_init(|| local::key_for(&self.path))
    }

    /// Probes the existing lock file, removing it when stale.
    fn probe(&self) -> Result<Probe> {
        stale::probe(&self.path, true).map_err(|e| Error::io("inspect lock file", &self.path, e))
    }

    /// Finishes an acquire after our exclusive create: takes the OS lock and writes our
    /// pid. `None` when another process holds the file's OS lock (portalocker or .NET
    /// got it first; it removes the file when done) or the path stopped naming the file.
    fn take_created(
        &self,
        file: Arc<File>,
        written: bool,
        deadline: Instant,
    ) -> Result<Option<Arc<File>>> {
        let mut pause = Duration::from_micros(10);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    // A prober holds it for microseconds; the others hold it until done.
                    if !self.names(&file)? || Instant::now() >= deadline {
                        return Ok(None);
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(POLL_MAX_FIRST);
                }
                // No OS locks on this file system: the pid alone marks the holder.
                Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                    break;
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    let _ = self.unlink_if_ours(&file);
                    return Err(Error::io("lock", &self.path, e));
                }
            }
        }
        // A file that appeared with our pid is never judged stale while we run (our
        // pid is alive and the file younger than this process), so nobody removed it.
        if written {
            return Ok(Some(file));
        }
        // An empty one is, after a stall longer than GRACE between create and lock: then
        // a prober may have removed it, and the lock is not ours.
        if !self.names(&file)? {
            return Ok(None);
        }
        let content = lock_file_content();
        if let Err(e) = (&*file).write_all(content.as_bytes()) {
            let _ = self.unlink_if_ours(&file);
            return Err(Error::io("write lock file", &self.path, e));
        }
        Ok(Some(file))
    }

    fn names(&self, file: &File) -> Result<bool> {
        same_file(file, &self.path).map_err(|e| Error::io("inspect lock file", &self.path, e))
    }

    /// Removes the path if it names `file`. On Windows the file is deleted on close.
    fn unlink_if_ours(&self, file: &File) -> io::Result<()> {
        unlink_if_ours(&self.path, file)
    }

    fn timeout(&self, wait: Duration, seen: Seen) -> Error {
        Error::new(
            ErrorKind::LockTimeout,
            format!(
                "timed out after {wait:?} waiting for the lock file {}: {seen}",
                self.path.display()
            ),
        )
    }
}

/// A held [`FileLock`]. Released by [`HeldLock::release`] or on drop.
#[derive(Debug)]
pub struct FileLockGuard {
    path: PathBuf,
    shared: Arc<Shared>,
    /// Shared with the `FileLock`'s stock on Unix (see `create`): released by unlocking.
    file: Option<Arc<File>>,
    /// Released once the lock file is gone from its path (Unix: after the unlink;
    /// Windows: after the close, which deletes it), so that no other process of ours
    /// creates a lock file while ours still exists.
    guard: Option<Guard>,
    local: Option<LocalGuard>,
    /// The process that acquired it.
    pid: u32,
}

impl FileLockGuard {
    /// The lock file held.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn release_now(&mut self) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        // A forked child dropping a lock its parent holds: the lock file, its OS lock and
        // the guard are the parent's (the open files are shared), so leave them be.
        if self.pid != std::process::id() {
            return Ok(());
        }
        let unlinked = unlink_if_ours(&self.path, &file);
        step("lock file removed");
        let run_end = self.local.as_ref().and_then(LocalGuard::on_released);
        // On Unix the lock file is unlinked by now, so the guard can go before the file's
        // OS lock: a waiter of ours blocked on that lock (`watch`) wakes when it goes and
        // finds the guard already free. The file is the stock's, which stays open, so the
        // lock is dropped by unlocking (`keep::unlock`), or kept until the run ends when
        // this hold continued one (`keep`). On Windows the close is what removes the file
        // (the handle is ours alone there), so the guard goes after it.
        #[cfg(unix)]
        {
            drop(self.guard.take());
            let kept = run_end.is_some_and(|until| self.shared.keeper.keep(&file, until));
            if !kept {
                keep::unlock(&file);
            }
        }
        #[cfg(not(unix))]
        let _ = run_end;
        // Only now may the next thread of this process go.
        drop(file);
        drop(self.guard.take());
        step("OS locks dropped");
        drop(self.local.take());
        // Housekeeping, once per lock, where it delays no waiter: after the release.
        self.shared
            .swept
            .get_or_init(|| create::sweep_orphans(&self.path));
        unlinked.map_err(|e| Error::io("remove lock file", &self.path, e))
    }
}

impl HeldLock for FileLockGuard {
    fn release(mut self: Box<Self>) -> Result<()> {
        self.release_now()
    }
}

impl Drop for FileLockGuard {
    fn drop(&mut self) {
        if let Err(err) = self.release_now() {
            tracing::warn!(error = %err, "releasing the cache lock failed");
        }
    }
}

/// What a waiter last saw, for the timeout message.
enum Seen {
    Nothing,
    ThisProcess,
    LostCreated,
    Queued,
    OurGuard,
    Holder(Holder),
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Nothing => f.write_str("its holder is unknown"),
            Seen::ThisProcess => f.write_str("another thread or handle of this process holds it"),
            Seen::LostCreated => f.write_str(
                "another process took the OS lock of the file right after we created it",
            ),
            Seen::Queued => f.write_str(
                "it was free, but other waiters were ahead of us in line and did not take it",
            ),
            Seen::OurGuard => f.write_str(
                "another process of this crate holds it (its guard file is locked), whatever the lock file says",
            ),
            Seen::Holder(holder) => match (holder.pid, holder.liveness, holder.os_locked) {
                (Some(pid), _, true) => {
                    write!(f, "held by pid {pid} (alive: it holds the OS lock)")
                }
                (None, _, true) => f.write_str(
                    "held by a process that holds its OS lock and has not written its pid",
                ),
                (Some(pid), Some(liveness), false) => write!(f, "held by pid {pid} ({liveness})"),
                (Some(pid), None, false) => write!(f, "held by pid {pid}"),
                (None, _, false) => write!(
                    f,
                    "the file names no holder yet (it counts as stale once older than {GRACE:?})"
                ),
            },
        }
    }
}

/// How long the lock has looked free to a waiter that is not first in line.
///
/// The first waiter takes a free lock within a poll interval, so a lock free for
/// [`STALL`] means that waiter does not run (stopped, or not scheduled on a loaded
/// machine); the next waiter then competes for the lock without waiting its turn, so
/// that a stuck waiter in line holds nobody up for longer than that.
#[derive(Debug, Default)]
struct Stall {
    free_since: Option<Instant>,
}

/// See [`Stall`]: many poll intervals (`wake::POLL_MAX`), with room for scheduling delay.
const STALL: Duration = Duration::from_millis(50);

impl Stall {
    fn saw_free(&mut self) {
        self.free_since.get_or_insert_with(Instant::now);
    }

    fn saw_held(&mut self) {
        self.free_since = None;
    }

    fn overdue(&self) -> bool {
        self.free_since
            .is_some_and(|since| since.elapsed() >= STALL)
    }
}

/// The lock file exists (Windows: or is being deleted, which refuses opens until its last
/// handle closes, as MSAL Node's `EPERM` case).
fn is_taken(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AlreadyExists
        || (cfg!(windows) && e.kind() == io::ErrorKind::PermissionDenied)
}

#[cfg(not(windows))]
fn unlink_if_ours(path: &Path, file: &File) -> io::Result<()> {
    if !same_file(file, path)? {
        return Ok(());
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(windows)]
fn unlink_if_ours(_path: &Path, _file: &File) -> io::Result<()> {
    // FILE_FLAG_DELETE_ON_CLOSE deletes exactly the file we hold when it is closed.
    Ok(())
}
