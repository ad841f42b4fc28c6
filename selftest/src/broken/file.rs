//! The file family: a small plain-file plugin of its own, correct, with one behaviour
//! changed per [`Flaw`]. These flaws live where files, processes and crashes meet, so the
//! cases that catch them start worker processes serving the same flawed plugin.
//!
//! The correct behaviour ([`Flaw::None`], the control, which passes every case):
//!
//! - the blob is `<dir>/<name>`, mode 0600, in a directory created 0700 when missing;
//! - **save** writes a new temporary file beside it, fsyncs it, gives it a modification time
//!   later than the blob's, renames it over the blob and fsyncs the directory;
//! - **load** reads the file; anything but a regular file is `CorruptData`;
//! - **version** is device, inode, size and nanosecond mtime and ctime;
//! - **lock** is `flock` on `<dir>/<name>.lockfile` (never deleted): it excludes every other
//!   open of the file, in this process or another, and the OS releases it when the holder
//!   dies.
//!
//! The layout is the reference plugin's, so the factory borrows the fault and corruption
//! hooks of [`conformance::FileFactory`].
//!
//! The rule each flaw breaks and the conformance case that must catch it are in
//! [`Flaw::spec`], next to the flaw.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    path::{Path, PathBuf},
    sync::{Condvar, Mutex, OnceLock},
    thread,
    time::{Duration, Instant, SystemTime},
};

use conformance::{Fault, FileFactory, Namespace, PluginFactory};
use identity_cache_persistence::{
    CachePersistence, Capabilities, ChangeToken, Description, Error, ErrorKind, HeldLock,
    LockGuard, Result, validate_name,
};

use super::Spec;
use crate::sync::lock;

/// One changed behaviour of the file plugin. The rule it breaks and the case that catches
/// it: [`Flaw::spec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flaw {
    /// Nothing changed: the control, which passes every case that applies.
    None,
    /// `save` truncates the blob file and writes the new blob into it, in 16-byte writes
    /// (then fsyncs): no temporary file, no rename.
    TruncateInPlace,
    /// `save` writes the new blob over the old one in place, in 16-byte writes, and cuts the
    /// file to length afterwards: no temporary file, no rename, no fsync.
    NoRename,
    /// [`Flaw::NoRename`] on a small store: it declares (and enforces) a `max_size` of
    /// [`SMALL_STORE`] bytes, and writes one byte at a time.
    NoRenameSmallStore,
    /// `lock` creates `<name>.lockfile` with `O_EXCL` and removes it on release; the file
    /// names no holder and nothing recovers it when the holder dies.
    ExclLockNoRecovery,
    /// `lock` is a table of held slots in process memory (a mutex, no file), while it
    /// declares `exclusive_lock`.
    ProcessLocalLock,
    /// `lock` is an `O_EXCL` lock file holding the holder's pid; a waiter that finds the
    /// holder dead takes the lock over by writing its own pid into the file: a check and a
    /// write, not one atomic step.
    RacyRecovery,
    /// `lock` is `flock`, and the holder's pid is written to `<name>.holder` (removed on
    /// release); a process that gets the flock and finds a dead holder's pid there lets the
    /// dead holder's writes "settle" until [`SETTLE`] after that holder took the lock, beyond
    /// the wait it was given, before it returns the lock.
    SlowRecovery,
    /// The change token is a counter in process memory, bumped by this process's saves and
    /// deletes.
    ProcessLocalToken,
    /// The blob file is created with the default mode (0644 under umask 022).
    DefaultFileMode,
    /// A missing directory is created with the default mode (0755 under umask 022).
    DefaultDirMode,
    /// The blob and lock files are named after the first [`NAME_KEPT`] bytes of the cache
    /// name, as a store with a short key limit would keep them.
    TruncatedNames,
    /// Names over [`NAME_LIMIT`] bytes are refused with `InvalidName`, though names up to
    /// `MAX_NAME_LEN` are valid.
    ShortNameLimit,
    /// `lock` is `flock`, but a waiter that has waited [`GIVE_UP`] replaces the lock file
    /// and takes a new one, whether its holder lives or not (portalocker's way after 5 s).
    BreaksLongWaits,
    /// `lock` is an `O_EXCL` lock file, as MSAL's; release removes it but answers `Ok`
    /// when the removal fails, leaving the lock held.
    ReleaseIgnoresErrors,
    /// `lock` takes every error of opening its lock file for "someone holds it" and
    /// retries until its wait runs out.
    LockRetriesRefusals,
    /// `delete` takes every error of removing the blob file for "nothing was there".
    DeleteErrorsAsAbsent,
    /// `version` takes every error of inspecting the blob file for "nothing stored".
    VersionErrorsAsAbsent,
    /// `lock` is `flock` plus a marker `<name>.holder` naming the holder's pid, removed on
    /// release (a refused removal is reported); a marker naming a live process counts as
    /// held, even when that process is this one and holds nothing.
    StuckAfterRefusedRelease,
}

impl Flaw {
    /// Every flaw but [`Flaw::None`], in catalogue order.
    pub const ALL: &'static [Flaw] = &[
        Flaw::TruncateInPlace,
        Flaw::NoRename,
        Flaw::NoRenameSmallStore,
        Flaw::ExclLockNoRecovery,
        Flaw::ProcessLocalLock,
        Flaw::RacyRecovery,
        Flaw::SlowRecovery,
        Flaw::ProcessLocalToken,
        Flaw::DefaultFileMode,
        Flaw::DefaultDirMode,
        Flaw::TruncatedNames,
        Flaw::ShortNameLimit,
        Flaw::BreaksLongWaits,
        Flaw::ReleaseIgnoresErrors,
        Flaw::LockRetriesRefusals,
        Flaw::DeleteErrorsAsAbsent,
        Flaw::VersionErrorsAsAbsent,
        Flaw::StuckAfterRefusedRelease,
    ];

    /// The catalogue entry: name, the one rule broken, the case that must catch it, and
    /// other cases that must fail too.
    pub fn spec(self) -> Spec {
        let s = |name, rule, expected_case, also| Spec {
            name,
            rule,
            expected_case,
            also,
        };
        match self {
            Flaw::None => s(
                "file_control",
                "none: the file family's control, which breaks nothing",
                "",
                &[],
            ),
            Flaw::TruncateInPlace => s(
                "file_truncate_in_place",
                "a concurrent load sees the old or the new blob, never a truncated or partly written one (save truncates and writes in place)",
                "concurrency::no_torn_reads_threads",
                &[
                    "concurrency::no_torn_reads_processes",
                    "crash::kill_during_save_leaves_whole_blob",
                    "crash::kill_during_save_racing_reader",
                ],
            ),
            Flaw::NoRename => s(
                "file_save_without_rename",
                "a save killed half-way leaves the old or the new blob whole (save writes in place, without fsync or an atomic rename)",
                "crash::kill_during_save_racing_reader",
                &["crash::kill_during_save_leaves_whole_blob"],
            ),
            Flaw::NoRenameSmallStore => s(
                "file_small_save_without_rename",
                "a save killed half-way leaves the old or the new blob whole (save writes in place, a byte at a time, without fsync or an atomic rename; small blobs make the saves quick, so a kill early in a run of saves lands in a write)",
                "crash::kill_during_save_leaves_whole_blob",
                &[],
            ),
            Flaw::ExclLockNoRecovery => s(
                "file_lock_not_released_on_death",
                "the lock of a killed holder is free again within the recovery bound (an O_EXCL lock file without pid or staleness recovery)",
                "crash::killed_holder_frees_lock",
                &["crash::dead_holder_recovered_by_one_waiter"],
            ),
            Flaw::ProcessLocalLock => s(
                "file_lock_process_local",
                "the lock excludes other processes, not only handles and threads of one process (a mutex, no file)",
                "lock::excludes_other_process",
                &[
                    "lock::excluded_by_this_process",
                    "concurrency::no_lost_updates_processes",
                ],
            ),
            Flaw::RacyRecovery => s(
                "file_lock_racy_recovery",
                "a dead holder's lock is recovered by one waiter at a time (here two waiters both take it over)",
                "crash::dead_holder_recovered_by_one_waiter",
                &[],
            ),
            Flaw::SlowRecovery => s(
                "file_lock_slow_recovery",
                "the lock of a killed holder is free again within the recovery bound (here it is granted 9 s after the holder took it, whatever the wait)",
                "crash::killed_holder_frees_lock",
                &["crash::dead_holder_recovered_by_one_waiter"],
            ),
            Flaw::ProcessLocalToken => s(
                "file_token_process_local",
                "the change token moves when another process saves",
                "change::moves_on_save_by_other_process",
                &[],
            ),
            Flaw::DefaultFileMode => s(
                "file_world_readable",
                "files the plugin creates are 0600 or stricter",
                "security::files_private",
                &[],
            ),
            Flaw::DefaultDirMode => s(
                "file_open_directory",
                "directories the plugin creates are 0700 or stricter",
                "security::dirs_private",
                &[],
            ),
            Flaw::TruncatedNames => s(
                "file_truncated_names",
                "two names in one directory are two caches, also when they differ only in their last byte (files named after the first 64 bytes)",
                "names::long_common_prefix_isolated",
                &[],
            ),
            Flaw::ShortNameLimit => s(
                "file_short_name_limit",
                "every valid cache name works (names over 128 bytes refused)",
                "names::every_valid_name_works",
                &[],
            ),
            Flaw::BreaksLongWaits => s(
                "file_lock_breaks_long_waits",
                "a live process holding the lock keeps it however long another waits (a waiter replaces the lock file after 3 s)",
                "lock::live_holder_kept_through_long_wait",
                &[],
            ),
            Flaw::LockRetriesRefusals => s(
                "file_lock_retries_refusals",
                "a request for a free lock that the storage refuses fails with AccessDenied, not LockTimeout",
                "faults::refused_lock_is_not_a_timeout",
                &[],
            ),
            Flaw::ReleaseIgnoresErrors => s(
                "file_release_ignores_errors",
                "LockGuard::release answers Ok only when the lock is free (a lock file that could not be removed is reported)",
                "faults::release_refused_is_reported",
                &["faults::release_unreachable_is_reported"],
            ),
            Flaw::DeleteErrorsAsAbsent => s(
                "file_delete_errors_as_absent",
                "a delete the OS refuses fails with AccessDenied (here any error answers Ok(false), \"nothing was stored\")",
                "faults::access_denied_delete_kind",
                &[],
            ),
            Flaw::VersionErrorsAsAbsent => s(
                "file_version_errors_as_absent",
                "a change token read while the storage cannot be reached is never None (here any error answers None, \"nothing stored\")",
                "faults::storage_unavailable_version_kind",
                &[],
            ),
            Flaw::StuckAfterRefusedRelease => s(
                "file_lock_stuck_after_refused_release",
                "a release the storage refused leaves nothing that blocks the handle that made it (here its holder marker, naming this live process, keeps the lock taken for good)",
                "faults::refused_release_leaves_nothing_stuck",
                &[],
            ),
        }
    }

    /// True when the cases that catch it start worker processes.
    pub fn multi_process(self) -> bool {
        matches!(
            self,
            Flaw::TruncateInPlace
                | Flaw::NoRename
                | Flaw::NoRenameSmallStore
                | Flaw::ExclLockNoRecovery
                | Flaw::ProcessLocalLock
                | Flaw::RacyRecovery
                | Flaw::SlowRecovery
                | Flaw::ProcessLocalToken
                | Flaw::BreaksLongWaits
        )
    }
}

/// A handle of the file family with one [`Flaw`].
pub struct BrokenFile {
    flaw: Flaw,
    dir: PathBuf,
    path: PathBuf,
    lock_path: PathBuf,
}

impl fmt::Debug for BrokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokenFile")
            .field("flaw", &self.flaw)
            .field("path", &self.path)
            .finish()
    }
}

/// How long after a holder took the lock [`Flaw::SlowRecovery`] waits before it takes over
/// from that holder once dead: past the 5 s recovery bound, as a fixed "stale after" age is.
pub const SETTLE: Duration = Duration::from_secs(9);

/// How many bytes of the name [`Flaw::TruncatedNames`] keeps.
pub const NAME_KEPT: usize = 64;

/// The longest name [`Flaw::ShortNameLimit`] accepts.
pub const NAME_LIMIT: usize = 128;

/// How long a [`Flaw::BreaksLongWaits`] waiter waits before it replaces the lock file.
pub const GIVE_UP: Duration = Duration::from_secs(3);

/// The `max_size` of [`Flaw::NoRenameSmallStore`].
pub const SMALL_STORE: usize = 16 * 1024;

/// Size of the writes of the in-place savers: small pieces, as a serializer writing
/// straight to an unbuffered `File` hands them over.
const CHUNK: usize = 16;

impl BrokenFile {
    fn new(flaw: Flaw, ns: &Namespace) -> Result<Self> {
        validate_name(&ns.name)?;
        if flaw == Flaw::ShortNameLimit && ns.name.len() > NAME_LIMIT {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!("names are at most {NAME_LIMIT} bytes here"),
            ));
        }
        let name = match flaw {
            // The suite's names are ASCII, so any byte count is a character boundary.
            Flaw::TruncatedNames => ns.name.get(..NAME_KEPT).unwrap_or(&ns.name),
            _ => &ns.name,
        };
        let path = ns.dir.join(name);
        let mut lock_name = name.to_owned();
        lock_name.push_str(".lockfile");
        Ok(BrokenFile {
            flaw,
            dir: ns.dir.clone(),
            lock_path: ns.dir.join(lock_name),
            path,
        })
    }

    fn make_dir(&self) -> Result<()> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        if self.flaw != Flaw::DefaultDirMode {
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        }
        builder.create(&self.dir).map_err(|e| {
            // "Exists" from a recursive create: the path or a parent is not a directory.
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::with_source(
                    ErrorKind::StorageUnavailable,
                    format!("{} is not a directory", self.dir.display()),
                    e,
                )
            } else {
                Error::io("create directory", &self.dir, e)
            }
        })
    }

    fn open_options(&self) -> OpenOptions {
        let mut options = OpenOptions::new();
        options.write(true);
        #[cfg(unix)]
        if self.flaw != Flaw::DefaultFileMode {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
        options
    }

    /// A modification time later than the blob's, so same-size saves move the token.
    fn next_mtime(&self) -> SystemTime {
        let now = SystemTime::now();
        match fs::metadata(&self.path).and_then(|m| m.modified()) {
            Ok(previous) if previous >= now => previous + Duration::from_nanos(1),
            _ => now,
        }
    }

    fn save_atomic(&self, data: &[u8]) -> Result<()> {
        let mtime = self.next_mtime();
        let temp = self.dir.join(format!(
            ".{}.{}-{:016x}.tmp",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id(),
            fastrand_u64()
        ));
        let written = self
            .open_options()
            .create_new(true)
            .open(&temp)
            .and_then(|mut file| {
                file.write_all(data)?;
                file.set_modified(mtime)?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&temp, &self.path));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(Error::io("save", &self.path, e));
        }
        sync_dir(&self.dir)
    }

    fn save_in_place(
        &self,
        data: &[u8],
        truncate_first: bool,
        fsync: bool,
        chunk: usize,
    ) -> Result<()> {
        let mtime = self.next_mtime();
        let io = |e| Error::io("save", &self.path, e);
        let mut file = self
            .open_options()
            .create(true)
            .truncate(truncate_first)
            .open(&self.path)
            .map_err(io)?;
        for piece in data.chunks(chunk) {
            file.write_all(piece).map_err(io)?;
        }
        file.set_len(data.len() as u64).map_err(io)?;
        file.set_modified(mtime).map_err(io)?;
        if fsync {
            file.sync_all().map_err(io)?;
        }
        Ok(())
    }

    fn flock(&self, wait: Duration) -> Result<LockGuard> {
        let file = self
            .open_lock_file()
            .map_err(|e| Error::io("open lock file", &self.lock_path, e))?;
        poll(wait, &self.lock_path, || try_flock(&file))?;
        Ok(LockGuard::new(Held(Box::new(move || {
            drop(file);
            Ok(())
        }))))
    }

    /// The lock file that `flock` locks, created when missing and kept.
    fn open_lock_file(&self) -> std::io::Result<File> {
        self.open_options()
            .read(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
    }

    /// Creates the lock file with `O_EXCL`, waiting at most `wait` while it exists.
    fn excl_create(&self, wait: Duration) -> Result<()> {
        poll(wait, &self.lock_path, || {
            match self.open_options().create_new(true).open(&self.lock_path) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(Error::io("create lock file", &self.lock_path, e)),
            }
        })
    }

    fn excl_lock(&self, wait: Duration) -> Result<LockGuard> {
        self.excl_create(wait)?;
        let path = self.lock_path.clone();
        Ok(LockGuard::new(Held(Box::new(move || {
            fs::remove_file(&path).map_err(|e| Error::io("remove lock file", &path, e))
        }))))
    }

    fn racy_recovery_lock(&self, wait: Duration) -> Result<LockGuard> {
        let me = std::process::id();
        let deadline = deadline_of(wait);
        loop {
            match self.open_options().create_new(true).open(&self.lock_path) {
                Ok(mut file) => {
                    file.write_all(me.to_string().as_bytes())
                        .map_err(|e| Error::io("write lock file", &self.lock_path, e))?;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(&self.lock_path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    if let Some(pid) = holder
                        && !alive(pid)
                    {
                        // Let the dead holder's last writes settle, then take over. The
                        // check and the takeover are two steps: another waiter can do the
                        // same in between.
                        thread::sleep(Duration::from_millis(50));
                        fs::write(&self.lock_path, me.to_string())
                            .map_err(|e| Error::io("take over lock file", &self.lock_path, e))?;
                        break;
                    }
                }
                Err(e) => return Err(Error::io("create lock file", &self.lock_path, e)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(timeout(&self.lock_path, wait));
            }
            // Poll on 20 ms ticks of the wall clock.
            let since_epoch = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            let tick = Duration::from_millis(20);
            let to_tick =
                tick - Duration::from_nanos((since_epoch.as_nanos() % tick.as_nanos()) as u64);
            thread::sleep(to_tick.min(deadline - now));
        }
        let path = self.lock_path.clone();
        Ok(LockGuard::new(Held(Box::new(move || {
            fs::remove_file(&path).map_err(|e| Error::io("remove lock file", &path, e))
        }))))
    }

    fn slow_recovery_lock(&self, wait: Duration) -> Result<LockGuard> {
        let flock = self.flock(wait)?;
        let holder_path = self.lock_path.with_extension("holder");
        if let Ok(text) = fs::read_to_string(&holder_path)
            && let Ok(pid) = text.trim().parse::<u32>()
            && !alive(pid)
        {
            // The flaw: the settling time counts from when the dead holder took the lock,
            // not against this caller's wait.
            let taken = fs::metadata(&holder_path)
                .and_then(|m| m.modified())
                .unwrap_or_else(|_| SystemTime::now());
            let settled = taken + SETTLE;
            if let Ok(left) = settled.duration_since(SystemTime::now()) {
                thread::sleep(left);
            }
        }
        fs::write(&holder_path, std::process::id().to_string())
            .map_err(|e| Error::io("write lock holder", &holder_path, e))?;
        Ok(LockGuard::new(Held(Box::new(move || {
            let removed = fs::remove_file(&holder_path)
                .map_err(|e| Error::io("remove lock holder", &holder_path, e));
            drop(flock);
            removed
        }))))
    }

    fn marked_lock(&self, wait: Duration) -> Result<LockGuard> {
        let deadline = deadline_of(wait);
        let holder_path = self.lock_path.with_extension("holder");
        loop {
            let flock = self.flock(deadline.saturating_duration_since(Instant::now()))?;
            let marked = fs::read_to_string(&holder_path)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok());
            // The flaw: a live pid means held, though this process may be the one named.
            if marked.is_some_and(alive) {
                drop(flock);
                if Instant::now() >= deadline {
                    return Err(timeout(&self.lock_path, wait));
                }
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            fs::write(&holder_path, std::process::id().to_string())
                .map_err(|e| Error::io("write lock holder", &holder_path, e))?;
            return Ok(LockGuard::new(Held(Box::new(move || {
                let removed = fs::remove_file(&holder_path)
                    .map_err(|e| Error::io("remove lock holder", &holder_path, e));
                drop(flock);
                removed
            }))));
        }
    }

    fn process_local_lock(&self, wait: Duration) -> Result<LockGuard> {
        let table = local_locks();
        let deadline = Instant::now().checked_add(wait);
        let mut held = lock(&table.held);
        while held.contains(&self.lock_path) {
            let left = deadline.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Err(timeout(&self.lock_path, wait));
            }
            held = table
                .released
                .wait_timeout(held, left)
                .map(|(h, _)| h)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        held.insert(self.lock_path.clone());
        let path = self.lock_path.clone();
        Ok(LockGuard::new(Held(Box::new(move || {
            lock(&table.held).remove(&path);
            table.released.notify_all();
            Ok(())
        }))))
    }

    fn bump_local_token(&self) {
        *lock(local_tokens()).entry(self.path.clone()).or_default() += 1;
    }
}

impl CachePersistence for BrokenFile {
    fn describe(&self) -> Description {
        Description::new(
            "file-broken",
            self.path.display().to_string(),
            match self.flaw {
                Flaw::NoRenameSmallStore => Capabilities::full().max_size(Some(SMALL_STORE)),
                _ => Capabilities::full(),
            },
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        let mut options = OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
        let mut file = match options.open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &self.path, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io("inspect", &self.path, e))?;
        if !meta.is_file() {
            return Err(Error::new(
                ErrorKind::CorruptData,
                format!("{} is not a regular file", self.path.display()),
            ));
        }
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| Error::io("read", &self.path, e))?;
        Ok(Some(data))
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        self.make_dir()?;
        match self.flaw {
            Flaw::TruncateInPlace => self.save_in_place(data, true, true, CHUNK)?,
            Flaw::NoRename => self.save_in_place(data, false, false, CHUNK)?,
            Flaw::NoRenameSmallStore => {
                if data.len() > SMALL_STORE {
                    return Err(Error::new(
                        ErrorKind::TooLarge,
                        format!(
                            "a blob of {} bytes is larger than the {SMALL_STORE} bytes {} accepts",
                            data.len(),
                            self.path.display()
                        ),
                    ));
                }
                self.save_in_place(data, false, false, 1)?
            }
            _ => self.save_atomic(data)?,
        }
        if self.flaw == Flaw::ProcessLocalToken {
            self.bump_local_token();
        }
        Ok(())
    }

    fn delete(&self) -> Result<bool> {
        match fs::remove_file(&self.path) {
            Ok(()) => {
                sync_dir(&self.dir)?;
                if self.flaw == Flaw::ProcessLocalToken {
                    self.bump_local_token();
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(_) if self.flaw == Flaw::DeleteErrorsAsAbsent => Ok(false),
            Err(e) => Err(Error::io("delete", &self.path, e)),
        }
    }

    fn version(&self) -> Result<Option<ChangeToken>> {
        let meta = match fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(_) if self.flaw == Flaw::VersionErrorsAsAbsent => return Ok(None),
            Err(e) => return Err(Error::io("inspect", &self.path, e)),
        };
        if self.flaw == Flaw::ProcessLocalToken {
            let count = lock(local_tokens()).get(&self.path).copied().unwrap_or(0);
            return Ok(Some(ChangeToken::new(format!("local-{count}"))));
        }
        Ok(Some(change_token(&meta)))
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        self.make_dir()?;
        match self.flaw {
            Flaw::ExclLockNoRecovery => self.excl_lock(wait),
            Flaw::ReleaseIgnoresErrors => {
                self.excl_create(wait)?;
                let path = self.lock_path.clone();
                Ok(LockGuard::new(Held(Box::new(move || {
                    let _ = fs::remove_file(&path);
                    Ok(())
                }))))
            }
            Flaw::ProcessLocalLock => self.process_local_lock(wait),
            Flaw::StuckAfterRefusedRelease => self.marked_lock(wait),
            Flaw::RacyRecovery => self.racy_recovery_lock(wait),
            Flaw::SlowRecovery => self.slow_recovery_lock(wait),
            Flaw::BreaksLongWaits if wait > GIVE_UP => match self.flock(GIVE_UP) {
                Err(e) if e.kind() == ErrorKind::LockTimeout => {
                    // The holder "must be stuck": a new lock file, and the rest of the wait.
                    let _ = fs::remove_file(&self.lock_path);
                    self.flock(wait - GIVE_UP)
                }
                other => other,
            },
            Flaw::LockRetriesRefusals => {
                // The flaw: an error of opening the lock file is taken for "someone holds
                // it", and retried until the wait runs out.
                poll(wait, &self.lock_path, || Ok(self.open_lock_file().is_ok()))?;
                self.flock(wait)
            }
            _ => self.flock(wait),
        }
    }
}

/// A held lock: whatever releasing it takes.
struct Held(Box<dyn FnOnce() -> Result<()> + Send>);

impl HeldLock for Held {
    fn release(self: Box<Self>) -> Result<()> {
        (self.0)()
    }
}

fn timeout(path: &Path, wait: Duration) -> Error {
    Error::new(
        ErrorKind::LockTimeout,
        format!("{} was still locked after {wait:?}", path.display()),
    )
}

/// When a wait of `wait` from now ends. A wait too long to add to the clock (the
/// `Duration::MAX` of "no deadline") ends in a year, as good as never for any test.
fn deadline_of(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// Calls `attempt` until it answers true or `wait` runs out (at least once).
fn poll(wait: Duration, path: &Path, mut attempt: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = deadline_of(wait);
    let mut delay = Duration::from_micros(500);
    loop {
        if attempt()? {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(timeout(path, wait));
        }
        thread::sleep(delay.min(deadline - now));
        delay = (delay * 2).min(Duration::from_millis(10));
    }
}

#[cfg(unix)]
fn try_flock(file: &File) -> Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock(2) on a descriptor this function borrows; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(Error::with_source(ErrorKind::Io, "flock failed", err))
    }
}

#[cfg(not(unix))]
fn try_flock(_: &File) -> Result<bool> {
    Err(Error::not_supported("file-broken", "lock on this OS"))
}

#[cfg(unix)]
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn alive(_: u32) -> bool {
    true
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_: &Path) -> Result<()> {
    Ok(())
}

#[cfg(unix)]
fn change_token(meta: &fs::Metadata) -> ChangeToken {
    use std::os::unix::fs::MetadataExt;
    ChangeToken::new(format!(
        "{}:{}:{}:{}.{:09}:{}.{:09}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    ))
}

#[cfg(not(unix))]
fn change_token(meta: &fs::Metadata) -> ChangeToken {
    let nanos = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    ChangeToken::new(format!("{}:{nanos}", meta.len()))
}

/// A random number for temporary-file names, without a dependency: the clock's nanoseconds
/// mixed with a per-process counter.
fn fastrand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15))
    .wrapping_mul(0x0100_0000_01b3)
}

/// [`Flaw::ProcessLocalLock`]: the slots locked in this process.
struct LocalLocks {
    held: Mutex<HashSet<PathBuf>>,
    released: Condvar,
}

fn local_locks() -> &'static LocalLocks {
    static LOCKS: OnceLock<LocalLocks> = OnceLock::new();
    LOCKS.get_or_init(|| LocalLocks {
        held: Mutex::new(HashSet::new()),
        released: Condvar::new(),
    })
}

/// [`Flaw::ProcessLocalToken`]: saves and deletes per path, counted in this process.
fn local_tokens() -> &'static Mutex<HashMap<PathBuf, u64>> {
    static TOKENS: OnceLock<Mutex<HashMap<PathBuf, u64>>> = OnceLock::new();
    TOKENS.get_or_init(Mutex::default)
}

/// Makes [`BrokenFile`] handles with one flaw at `<ns.dir>/<ns.name>`; the fault and
/// corruption hooks are the reference file factory's (same layout).
pub struct FileFlawFactory {
    flaw: Flaw,
    hooks: FileFactory,
}

impl FileFlawFactory {
    /// A factory for plugins with `flaw`.
    pub fn new(flaw: Flaw) -> Self {
        FileFlawFactory {
            flaw,
            hooks: FileFactory::new(),
        }
    }
}

impl fmt::Debug for FileFlawFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileFlawFactory")
            .field("flaw", &self.flaw)
            .finish_non_exhaustive()
    }
}

impl PluginFactory for FileFlawFactory {
    fn label(&self) -> String {
        self.flaw.spec().name.to_string()
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        Ok(Box::new(BrokenFile::new(self.flaw, ns)?))
    }

    fn cleanup(&self, ns: &Namespace) -> Result<()> {
        // Undoes a fault left in force, and removes the blob.
        self.hooks.cleanup(ns)
    }

    fn corrupt_stored_data(&self, ns: &Namespace) -> Result<()> {
        self.hooks.corrupt_stored_data(ns)
    }

    fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.hooks.inject_fault(ns, fault)
    }

    fn clear_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.hooks.clear_fault(ns, fault)
    }
}
