//! The waiting line of this crate's waiters for one lock file: `<lock path>.queue/`.
//!
//! A waiter joins by creating a ticket file in that directory, named
//! `<wall-clock ns, 20 digits>-<pid>`, so names sort in arrival order and are never
//! reused, and by holding the ticket's OS lock ([`File::try_lock`]) for as long as
//! it waits. It leaves by removing its ticket. The directory stays, as the guard file
//! does: created by the first waiter, never removed. Removing it when the line emptied,
//! as this did before, put an `rmdir` on the path of every hand-off (the waiter leaves the
//! line as it takes the lock), and on ext4 an `rmdir` of a directory created a few
//! milliseconds earlier took 2–4 ms, twenty times the rest of the hand-off.
//!
//! Only the waiter whose ticket is first among the live ones tries to create the lock
//! file. A ticket whose OS lock is free belongs to a waiter that died (the OS drops the
//! lock with its holder), so whoever finds one ahead of its own removes it: a waiter
//! killed in line holds nobody up for longer than the next poll. A live waiter can be
//! caught between creating its ticket and locking it; it then finds its ticket removed
//! and creates it again under the same name, keeping its place.
//!
//! The line only decides who goes first among waiters that use it: it never decides
//! who holds the lock, which stays the lock file's exclusive create and OS lock. So any
//! failure to use it (a read-only directory, a file system without OS locks) is not an
//! error: the waiter then competes for the lock file as every waiter did before there was
//! a line, and so do the other SDKs, which know nothing of it.

use std::{
    ffi::OsString,
    fs::{self, File, OpenOptions},
    io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{file_id::same_file, wake::POLL_MAX_FIRST};

/// The line of one lock file. Touches nothing until used.
#[derive(Debug)]
pub(super) struct Queue {
    dir: PathBuf,
}

/// A place in line; dropping it leaves the line.
#[derive(Debug)]
pub(super) struct Ticket {
    name: OsString,
    path: PathBuf,
    /// Open, and OS-locked, for as long as the ticket exists: that lock is what tells
    /// the others that this waiter is alive.
    _file: File,
}

impl Queue {
    pub(super) fn for_lock(lock: &Path) -> Queue {
        let mut dir = lock.as_os_str().to_owned();
        dir.push(".queue");
        Queue {
            dir: PathBuf::from(dir),
        }
    }

    /// Whether a live waiter is in line. Removes the tickets of dead waiters on the way.
    pub(super) fn has_waiters(&self) -> bool {
        self.names()
            .is_some_and(|names| names.iter().any(|name| self.is_alive(name)))
    }

    /// Joins the line, at its end. `None` when the line cannot be used here (see the
    /// module documentation) or `deadline` passes while joining.
    pub(super) fn join(&self, deadline: Instant) -> Option<Ticket> {
        match self.try_join(deadline) {
            Ok(ticket) => ticket,
            Err(e) => {
                tracing::debug!(
                    dir = %self.dir.display(),
                    error = %e,
                    "cannot queue for the cache lock; waiting without a place in line"
                );
                None
            }
        }
    }

    /// The live ticket just ahead of `ticket` in line, or `None` when `ticket` is first
    /// among the live ones. Removes the dead tickets between the two. Also `None` when
    /// the line cannot be read, so that the waiter falls back to competing rather than
    /// waiting for nothing.
    ///
    /// The OS lock of the ticket ahead is dropped when its waiter leaves the line or dies,
    /// which is when our place may change: that is what a waiter behind the first sleeps
    /// on (`super::watch`).
    pub(super) fn ahead_of(&self, ticket: &Ticket) -> Option<PathBuf> {
        let names = self.names()?;
        // Nearest first.
        names
            .iter()
            .rev()
            .filter(|name| **name < ticket.name)
            .find(|name| self.is_alive(name))
            .map(|name| self.dir.join(name))
    }

    fn try_join(&self, deadline: Instant) -> io::Result<Option<Ticket>> {
        let name = OsString::from(format!("{:020}-{}", stamp(), std::process::id()));
        let path = self.dir.join(&name);
        while Instant::now() < deadline {
            let file = match create_ticket(&path) {
                Ok(file) => file,
                // No line yet, or someone removed the directory (earlier versions of this
                // crate did when the line emptied): create it, and again. Only then, so
                // that joining an existing line costs no failing `mkdir`.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    create_private_dir(&self.dir)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match lock_own_ticket(&file, &path, deadline) {
                Ok(Locked::Yes) => {
                    return Ok(Some(Ticket {
                        name,
                        path,
                        _file: file,
                    }));
                }
                // Removed as dead before we locked it: create it again, same place.
                Ok(Locked::RemovedFirst) => {}
                Ok(Locked::TimedOut) => break,
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    return Err(e);
                }
            }
        }
        let _ = fs::remove_file(&path);
        Ok(None)
    }

    /// The tickets in line, in arrival order; `None` when the line cannot be read.
    fn names(&self) -> Option<Vec<OsString>> {
        let mut names: Vec<OsString> = fs::read_dir(&self.dir)
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.file_name()))
            .filter(is_ticket_name)
            .collect();
        names.sort();
        Some(names)
    }

    /// Whether the waiter of ticket `name` is alive; removes the ticket if it is dead.
    /// A ticket that is gone or cannot be judged holds nobody up.
    fn is_alive(&self, name: &OsString) -> bool {
        let path = self.dir.join(name);
        // Unreadable includes, on Windows, a ticket being deleted.
        let Ok(file) = OpenOptions::new().read(true).open(&path) else {
            return false;
        };
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) => true,
            Ok(()) => {
                // Its waiter died, or is between creating and locking it and will create
                // it again. The name is never reused, so this removes only that ticket.
                if fs::remove_file(&path).is_ok() {
                    tracing::debug!(
                        ticket = %path.display(),
                        "removed the ticket of a waiter that is gone"
                    );
                }
                false
            }
            // No OS locks here: nobody's liveness can be told.
            Err(std::fs::TryLockError::Error(_)) => false,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // The name is ours alone; removing it before closing means no prober ever sees it
        // unlocked. The directory stays (see the module documentation).
        let _ = fs::remove_file(&self.path);
    }
}

/// The arrival time of a new ticket: wall-clock nanoseconds, which all processes of a
/// machine share, made strictly increasing within this process so that its tickets
/// never tie (Windows clocks tick in 100 ns). A clock stepped back lets a newcomer in
/// ahead of older tickets once: unfair for one turn, never unsafe.
fn stamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// `<20 digits>-<digits>`: anything else in the directory is not ours to judge.
fn is_ticket_name(name: &OsString) -> bool {
    let Some((stamp, pid)) = name.to_str().and_then(|name| name.split_once('-')) else {
        return false;
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    stamp.len() == 20 && digits(stamp) && digits(pid)
}

enum Locked {
    Yes,
    /// A prober judged the ticket dead and removed it before we locked it.
    RemovedFirst,
    TimedOut,
}

/// Takes the OS lock of our new ticket; an error when the file system has no OS locks.
fn lock_own_ticket(file: &File, path: &Path, deadline: Instant) -> io::Result<Locked> {
    let mut pause = Duration::from_micros(10);
    loop {
        match file.try_lock() {
            Ok(()) if same_file(file, path)? => return Ok(Locked::Yes),
            Ok(()) => return Ok(Locked::RemovedFirst),
            // A prober holds it for a moment, judging it.
            Err(std::fs::TryLockError::WouldBlock) => {
                if !same_file(file, path)? {
                    return Ok(Locked::RemovedFirst);
                }
                if Instant::now() >= deadline {
                    return Ok(Locked::TimedOut);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(POLL_MAX_FIRST);
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

fn create_ticket(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// The directory, owner-only; an existing one is fine.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    let created =
        std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700).create(dir);
    #[cfg(not(unix))]
    let created = fs::DirBuilder::new().create(dir);
    match created {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn tickets_are_first_in_arrival_order_and_the_last_one_out_leaves_an_empty_line()
    -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let queue = Queue::for_lock(&dir.path().join("c.lockfile"));
        assert!(!queue.has_waiters());
        let first = queue.join(far()).expect("joins");
        let second = queue.join(far()).expect("joins");
        assert!(queue.has_waiters());
        assert_eq!(queue.ahead_of(&first), None);
        assert_eq!(queue.ahead_of(&second), Some(first.path.clone()));
        drop(first);
        assert_eq!(queue.ahead_of(&second), None);
        drop(second);
        // Looked at before `has_waiters`, which would clear a ticket left unlocked.
        let left = fs::read_dir(dir.path().join("c.lockfile.queue"))?.count();
        assert_eq!(left, 0, "tickets left in the line");
        assert!(!queue.has_waiters());
        Ok(())
    }

    /// What a waiter killed in line leaves: a ticket nobody holds the OS lock of.
    #[test]
    fn a_dead_waiters_ticket_is_removed_and_holds_nobody_up() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let queue = Queue::for_lock(&dir.path().join("c.lockfile"));
        let line = dir.path().join("c.lockfile.queue");
        fs::create_dir(&line)?;
        let dead = line.join(format!("{:020}-4194400", 1));
        fs::write(&dead, "")?;
        let ours = queue.join(far()).expect("joins");
        assert_eq!(queue.ahead_of(&ours), None);
        assert!(!dead.exists());
        drop(ours);
        // Alone in line, a dead ticket is cleared by the next look.
        fs::write(&dead, "")?;
        assert!(!queue.has_waiters());
        assert!(!dead.exists());
        Ok(())
    }

    #[test]
    fn foreign_files_in_the_line_are_left_alone() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let queue = Queue::for_lock(&dir.path().join("c.lockfile"));
        let line = dir.path().join("c.lockfile.queue");
        fs::create_dir(&line)?;
        fs::write(line.join("notes.txt"), "")?;
        assert!(!queue.has_waiters());
        assert!(line.join("notes.txt").exists());
        for name in [
            "1-2",
            "00000000000000000001-2-3",
            "0000000000000000000a-2",
            "00000000000000000001-",
            "x",
        ] {
            assert!(!is_ticket_name(&OsString::from(name)), "{name}");
        }
        assert!(is_ticket_name(&OsString::from("00000000000000000001-2")));
        Ok(())
    }
}
