//! Multi-process cases beyond "one worker per rule": a reader process racing repeatedly
//! killed savers, and two processes racing to recover the lock of a killed holder.
//!
//! Both need [`Need::Workers`]: the plugin shares its slot across processes and the run
//! has a [`WorkerLauncher`](crate::WorkerLauncher) (the re-executed test binary, or the
//! `exec:` command started again). Kills are SIGKILL to the worker's process group, so a
//! plugin started through `sh -c` dies with its shell.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use identity_cache_persistence::{CachePersistence, LockGuard};

use crate::{
    blob,
    case::{Case, Failure, Need},
    ctx::Ctx,
    factory::Worker,
};

/// How long a lock may stay unavailable after its holder was killed (PROTOCOL.md, section 4).
pub const RECOVERY_BOUND: Duration = Duration::from_secs(5);

/// How long each waiter holds the recovered lock in `crash::dead_holder_recovered_by_one_waiter`.
const HOLD: Duration = Duration::from_millis(300);

/// The multi-process cases that go beyond one worker per rule: a reader process racing
/// repeatedly killed savers, and several processes racing to recover a dead holder's lock.
pub const CASES: &[Case] = &[
    Case {
        name: "crash::kill_during_save_racing_reader",
        rule: "savers killed (SIGKILL) at random points of their saves leave the old or the new blob, whole and never older than a confirmed save; a reader process racing them never sees a torn, truncated, empty or absent blob",
        needs: &[Need::Workers, Need::Accepts(KILL_BLOB_LEN)],
        run: kill_during_save_racing_reader,
    },
    Case {
        name: "crash::dead_holder_recovered_by_one_waiter",
        rule: "when the lock holder is killed (SIGKILL) while two processes wait, both get the lock within the recovery bound (5 s), one after the other, never both at once",
        needs: &[Need::Workers, Need::Lock],
        run: dead_holder_recovered_by_one_waiter,
    },
];

/// `crash::dead_holder_recovered_by_one_waiter`.
///
/// Recovering a dead holder's lock is where lock implementations break: two waiters that
/// both judge the lock stale must not both break it and both enter.
pub fn dead_holder_recovered_by_one_waiter(ctx: &Ctx) -> Result<(), Failure> {
    let ns = ctx.namespace()?;
    let mut holder = ctx.worker(&ns)?;
    let waiters = [ctx.worker(&ns)?, ctx.worker(&ns)?];
    let guard = lock(ctx, &*holder, Duration::from_secs(5), "the holder's lock")?;
    let start = Instant::now();
    // Either waiter may have to wait for the other's hold on top of the recovery.
    let bound = RECOVERY_BOUND + HOLD * 2;
    let threads: Vec<_> = waiters
        .into_iter()
        .map(|waiter| {
            thread::spawn(move || {
                waiter.lock(bound).map(|guard| {
                    let entered = start.elapsed();
                    thread::sleep(HOLD);
                    let left = start.elapsed();
                    (entered, left, guard.release())
                })
            })
        })
        .collect();
    // Both waiters are blocked in `lock` when the holder dies.
    thread::sleep(Duration::from_millis(200));
    holder.kill();
    let killed_at = start.elapsed();
    // The guard belongs to a dead process: its release fails at once (and is only logged).
    drop(guard);
    let mut spans = Vec::new();
    for (n, thread) in threads.into_iter().enumerate() {
        let Ok(result) = thread.join() else {
            return Err(ctx.fail("the waiter threads finish", "one panicked"));
        };
        match result {
            Ok((entered, left, released)) => {
                ctx.ok(&format!("waiter {n}'s unlock"), released)?;
                spans.push((entered, left));
            }
            Err(e) => {
                return Err(ctx.fail(
                    format!(
                        "waiter {n} gets the lock within {RECOVERY_BOUND:?} (+ the other waiter's {HOLD:?}) of the holder's death"
                    ),
                    format!(
                        "{} ({:?} after the kill)",
                        blob::describe_error(&e),
                        start.elapsed().saturating_sub(killed_at)
                    ),
                ));
            }
        }
    }
    spans.sort();
    if let [(first_entered, first_left), (second_entered, _)] = spans[..]
        && second_entered < first_left
    {
        return Err(ctx.fail(
            "the two waiters hold the recovered lock one after the other",
            format!(
                "both held it at once: one from {first_entered:?} to {first_left:?}, the other from {second_entered:?} (since the start; holder killed at {killed_at:?})"
            ),
        ));
    }
    Ok(())
}

/// The size of the blobs `crash::kill_during_save_racing_reader` saves: big enough that a
/// save takes a while (more time to be killed in, and more than one write for plugins that
/// write in chunks), small enough that a round costs a fraction of a second over the
/// protocol on a 2-core machine.
pub const KILL_BLOB_LEN: usize = 512 << 10;

/// `crash::kill_during_save_racing_reader`.
pub fn kill_during_save_racing_reader(ctx: &Ctx) -> Result<(), Failure> {
    let rounds = if ctx.thorough() { 60 } else { 10 };
    let ns = ctx.namespace()?;
    let reader = ctx.worker(&ns)?;
    // Id 0 is the baseline: from here on there is always a whole blob to load. It is saved
    // through a worker so that its duration, protocol included, tells how long the killed
    // savers' saves take.
    let started = Instant::now();
    ctx.ok(
        "the baseline save",
        reader.save(&blob::self_checking(0, KILL_BLOB_LEN)),
    )?;
    let save_time = started.elapsed().max(Duration::from_millis(2));
    let highest_started = Arc::new(AtomicU64::new(0));
    let reader = Reader::start(reader, Arc::clone(&highest_started));
    let rounds = kill_rounds(ctx, &ns, rounds, save_time, &highest_started);
    let (loads, reader_failure) = reader.stop();
    rounds?;
    if let Some(what) = reader_failure {
        return Err(ctx.fail(
            "every load racing the killed savers, in another process, returns a whole blob that was saved",
            what,
        ));
    }
    if loads == 0 {
        return Err(ctx.fail(
            "the reader process completes loads during the rounds",
            "it completed none",
        ));
    }
    Ok(())
}

/// Saves blobs `1..=rounds`, each by a new worker killed at a random point of its save,
/// and checks after each kill that the slot holds a whole blob no older than the last one
/// seen or confirmed.
fn kill_rounds(
    ctx: &Ctx,
    ns: &crate::Namespace,
    rounds: u64,
    save_time: Duration,
    highest_started: &AtomicU64,
) -> Result<(), Failure> {
    let mut state = KillRounds {
        ctx,
        local: ctx.plugin(ns)?,
        save_time,
        rng: ctx.rng(),
        highest_started,
        last_seen: 0,
    };
    thread::scope(|scope| {
        // Starting a worker can take longer than a round (an interpreter's start-up on a
        // busy machine): the next round's worker starts while this round runs.
        let mut next = Some(scope.spawn(|| ctx.worker(ns)));
        for id in 1..=rounds {
            let Some(starting) = next.take() else {
                break;
            };
            let worker = starting.join().map_err(|_| {
                ctx.fail("a worker process starts", "the starting thread panicked")
            })??;
            if id < rounds {
                next = Some(scope.spawn(|| ctx.worker(ns)));
            }
            state.round(worker, id)?;
        }
        Ok(())
    })
}

/// What the rounds of `crash::kill_during_save_racing_reader` share.
struct KillRounds<'a> {
    ctx: &'a Ctx,
    /// The handle the slot is checked through after each kill.
    local: Arc<dyn CachePersistence>,
    save_time: Duration,
    rng: fastrand::Rng,
    highest_started: &'a AtomicU64,
    /// The newest blob seen or confirmed so far: nothing older may come back.
    last_seen: u64,
}

impl KillRounds<'_> {
    /// Round `id`: `worker` saves blob `id` and is killed after a random delay; then the
    /// slot must hold a whole blob from `last_seen` (or `id` if the save was confirmed) to
    /// `id`.
    fn round(&mut self, worker: Box<dyn Worker>, id: u64) -> Result<(), Failure> {
        let ctx = self.ctx;
        let pid = worker.pid();
        let data = blob::self_checking(id, KILL_BLOB_LEN);
        self.highest_started.store(id, Ordering::SeqCst);
        let saver = thread::spawn(move || {
            let saved = worker.save(&data);
            (worker, saved)
        });
        // Spread over about one save's duration: before, during and after the write.
        let delay = self.save_time.mul_f64(self.rng.f64() * 1.5);
        thread::sleep(delay);
        sigkill(pid);
        let Ok((mut worker, saved)) = saver.join() else {
            return Err(ctx.fail("the saving thread finishes", "it panicked"));
        };
        worker.kill();
        // A save that answered Ok before the kill is durable.
        let floor = if saved.is_ok() { id } else { self.last_seen };
        let expected = format!(
            "after killing the saver of blob {id} {delay:?} into its save, load returns a whole blob {floor}..={id}"
        );
        let loaded = match self.local.load() {
            Ok(Some(bytes)) => blob::check_self_checking(&bytes),
            Ok(None) => Err("absent (None): the blob was lost".to_string()),
            Err(e) => Err(blob::describe_error(&e)),
        };
        match loaded {
            Ok(seen) if (floor..=id).contains(&seen) => {
                self.last_seen = seen;
                Ok(())
            }
            Ok(seen) => Err(ctx.fail(
                expected,
                format!("blob {seen}: older than a blob already seen or confirmed"),
            )),
            Err(why) => Err(ctx.fail(expected, why)),
        }
    }
}

/// A worker loading in a loop on its own thread, checking every blob it sees.
struct Reader {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<(u64, Option<String>)>,
}

impl Reader {
    fn start(worker: Box<dyn Worker>, highest_started: Arc<AtomicU64>) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut loads = 0;
            while !flag.load(Ordering::SeqCst) {
                let result = worker.load();
                // Read after the load: any save started before the load finished counts.
                let highest = highest_started.load(Ordering::SeqCst);
                loads += 1;
                let failure = match result {
                    Ok(Some(bytes)) => match blob::check_self_checking(&bytes) {
                        Ok(id) if id <= highest => None,
                        Ok(id) => Some(format!("load {loads} returned blob {id}, never saved")),
                        Err(why) => Some(format!("load {loads}: {why}")),
                    },
                    Ok(None) => Some(format!(
                        "load {loads} returned absent (None) though a blob was always stored"
                    )),
                    Err(e) => Some(format!("load {loads}: {}", blob::describe_error(&e))),
                };
                if failure.is_some() {
                    return (loads, failure);
                }
                // A short pause leaves CPU to the savers on small machines; the reader
                // still loads many times per save.
                thread::sleep(Duration::from_millis(2));
            }
            (loads, None)
        });
        Reader { stop, handle }
    }

    /// Stops the reader; the number of loads and the first bad one, if any.
    fn stop(self) -> (u64, Option<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle
            .join()
            .unwrap_or((0, Some("the reader thread panicked".into())))
    }
}

/// SIGKILLs `pid` and the process group it leads (a `sh -c` line's children too), without
/// reaping it: the worker's own `kill` reaps it afterwards, so the pid cannot be reused in
/// between.
fn sigkill(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            if libc::kill(-pid, libc::SIGKILL) != 0 {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// Takes `plugin`'s lock or fails the case saying `what`.
fn lock(
    ctx: &Ctx,
    plugin: &dyn CachePersistence,
    wait: Duration,
    what: &str,
) -> Result<LockGuard, Failure> {
    plugin.lock(wait).map_err(|e| {
        ctx.fail(
            format!("{what} succeeds within {wait:?}"),
            blob::describe_error(&e),
        )
    })
}
