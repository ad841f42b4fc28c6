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
    case::{Case, Need},
    cases::{
        crash::{RECOVERY_BOUND, RECOVERY_SLACK},
        kill,
    },
    ctx::Ctx,
    factory::Worker,
    failure::Stop,
};

/// How long each waiter holds the recovered lock in `crash::dead_holder_recovered_by_one_waiter`.
const HOLD: Duration = Duration::from_millis(300);

/// The multi-process cases that go beyond one worker per rule: a reader process racing
/// repeatedly killed savers, and several processes racing to recover a dead holder's lock.
pub const CASES: &[Case] = &[
    Case {
        name: "crash::kill_during_save_racing_reader",
        rule: "savers killed (SIGKILL) at points spread over their saves leave the old or the new blob, whole and never older than a confirmed save; a reader process racing them never sees a torn, truncated, empty or absent blob",
        needs: &[Need::Workers],
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
pub fn dead_holder_recovered_by_one_waiter(ctx: &Ctx) -> Result<(), Stop> {
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
    // The first waiter recovers the lock within the bound; the second enters after the
    // first's hold. Late is a failure even when granted (a plugin may ignore the wait).
    let late = spans.iter().enumerate().find_map(|(n, &(entered, _))| {
        let bound = RECOVERY_BOUND + HOLD * n as u32 + RECOVERY_SLACK;
        let after_kill = entered.saturating_sub(killed_at);
        (after_kill > bound).then_some((n, after_kill, bound))
    });
    if let Some((n, after_kill, bound)) = late {
        return Err(ctx.fail(
            format!(
                "the waiters enter within {RECOVERY_BOUND:?} of the holder's death (the second after the first's {HOLD:?} hold; + {RECOVERY_SLACK:?} slack)"
            ),
            format!(
                "the {} waiter entered {after_kill:?} after the death, past {bound:?}",
                if n == 0 { "first" } else { "second" }
            ),
        ));
    }
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

/// `crash::kill_during_save_racing_reader`.
pub fn kill_during_save_racing_reader(ctx: &Ctx) -> Result<(), Stop> {
    // Thorough: four times the strata, so windows a quarter as long are hit.
    let rounds = if ctx.thorough() { 192 } else { 48 };
    let len = ctx.size_up_to(kill::KILL_BLOB_LEN);
    let ns = ctx.namespace()?;
    let local = ctx.plugin(&ns)?;
    let reader = ctx.worker(&ns)?;
    // Id 0 is the baseline: from here on there is always a whole blob to load.
    ctx.ok(
        "the baseline save",
        local.save(&blob::self_checking(0, len)),
    )?;
    let highest_started = Arc::new(AtomicU64::new(0));
    let reader = Reader::start(reader, Arc::clone(&highest_started));
    // The savers are calibrated while the reader loads, as the rounds run.
    let rounds = kill::killed_saves(ctx, &ns, &local, len, rounds, |id| {
        highest_started.store(id, Ordering::SeqCst)
    });
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

/// Takes `plugin`'s lock or fails the case saying `what`.
fn lock(
    ctx: &Ctx,
    plugin: &dyn CachePersistence,
    wait: Duration,
    what: &str,
) -> Result<LockGuard, Stop> {
    plugin.lock(wait).map_err(|e| {
        ctx.fail(
            format!("{what} succeeds within {wait:?}"),
            blob::describe_error(&e),
        )
    })
}
