//! `lock`: the exclusive lock excludes every other holder (handles, threads, processes),
//! waits for real, times out with a typed error within a sane margin, and is released on
//! drop.
//!
//! Every lock call runs under a watchdog: a plugin whose lock hangs is reported as hanging.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use identity_cache_persistence::{CachePersistence, ErrorKind, LockGuard, Result};

use crate::{
    blob,
    case::{Case, Need},
    cases::check,
    ctx::Ctx,
    failure::Stop,
    run,
};

/// How long a lock that must be granted may take (generous: CI machines are slow).
pub const GRANT: Duration = Duration::from_secs(5);
/// The wait given to lock requests that must time out.
pub const SHORT_WAIT: Duration = Duration::from_millis(300);
/// How far past its wait a timed-out request may return and still be "bounded".
pub const TIMEOUT_MARGIN: Duration = Duration::from_secs(2);
/// Extra time the watchdog gives a lock call beyond its wait before calling it hung.
const HANG: Duration = Duration::from_secs(10);

/// The lock cases.
pub const CASES: &[Case] = &[
    Case {
        name: "lock::excludes_other_handle",
        rule: "while one handle holds the lock, another handle on the slot cannot take it",
        needs: &[Need::Lock],
        run: excludes_other_handle,
    },
    Case {
        name: "lock::excludes_across_threads",
        rule: "threads with their own handles never hold the lock at the same time",
        needs: &[Need::Lock],
        run: excludes_across_threads,
    },
    Case {
        name: "lock::not_reentrant",
        rule: "the lock is not re-entrant: a second lock by the holding handle times out",
        needs: &[Need::Lock],
        run: not_reentrant,
    },
    Case {
        name: "lock::waits_before_timeout",
        rule: "a request for a held lock blocks for its whole wait before giving up",
        needs: &[Need::Lock],
        run: waits_before_timeout,
    },
    Case {
        name: "lock::timeout_is_bounded",
        rule: "a request for a held lock ends with LockTimeout soon after its wait runs out",
        needs: &[Need::Lock],
        run: timeout_is_bounded,
    },
    Case {
        name: "lock::zero_wait_tries_once",
        rule: "lock with a zero wait grants a free lock, and answers LockTimeout at once for a held one",
        needs: &[Need::Lock],
        run: zero_wait_tries_once,
    },
    Case {
        name: "lock::release_on_drop",
        rule: "dropping the guard releases the lock: another handle takes it at once",
        needs: &[Need::Lock],
        run: release_on_drop,
    },
    Case {
        name: "lock::release_explicit",
        rule: "LockGuard::release returns Ok and releases the lock",
        needs: &[Need::Lock],
        run: release_explicit,
    },
    Case {
        name: "lock::waiter_enters_after_release",
        rule: "a waiter blocked on the lock enters after the holder releases, before its wait runs out",
        needs: &[Need::Lock],
        run: waiter_enters_after_release,
    },
    Case {
        name: "lock::unbounded_wait_enters_after_release",
        rule: "a wait too long to add to the clock (Duration::MAX) has no deadline: the waiter enters after the holder releases, with no panic and no error",
        needs: &[Need::Lock],
        run: unbounded_wait_enters_after_release,
    },
    Case {
        name: "lock::excludes_other_process",
        rule: "while another process holds the lock, this process cannot take it, and can once it is released",
        needs: &[Need::Lock, Need::Workers],
        run: excludes_other_process,
    },
    Case {
        name: "lock::excluded_by_this_process",
        rule: "while this process holds the lock, another process cannot take it",
        needs: &[Need::Lock, Need::Workers],
        run: excluded_by_this_process,
    },
    Case {
        name: "lock::live_holder_kept_through_long_wait",
        rule: "a live process holding the lock keeps it however long another waits: no age or wait limit breaks a live holder's lock",
        needs: &[Need::Lock, Need::Workers],
        run: live_holder_kept_through_long_wait,
    },
    Case {
        name: "lock::refused_when_not_declared",
        rule: "a plugin that declares no lock answers lock with NotSupported",
        needs: &[Need::NoLock],
        run: refused_when_not_declared,
    },
];

/// `p.lock(wait)` under a watchdog, with how long it took.
pub fn timed_lock(
    ctx: &Ctx,
    p: &Arc<dyn CachePersistence>,
    wait: Duration,
    what: &str,
) -> std::result::Result<(Result<LockGuard>, Duration), Stop> {
    let p = Arc::clone(p);
    ctx.within(wait.saturating_add(HANG), what, move || {
        let started = Instant::now();
        let result = p.lock(wait);
        (result, started.elapsed())
    })
}

/// A lock that must be granted within [`GRANT`].
pub fn take(
    ctx: &Ctx,
    p: &Arc<dyn CachePersistence>,
    what: &str,
) -> std::result::Result<LockGuard, Stop> {
    let (result, _) = timed_lock(ctx, p, GRANT, what)?;
    result.map_err(|e| {
        ctx.fail(
            format!("{what}: the free lock is granted"),
            blob::describe_error(&e),
        )
    })
}

/// A request that must time out because the lock is held.
fn refused(ctx: &Ctx, p: &Arc<dyn CachePersistence>, what: &str) -> std::result::Result<(), Stop> {
    refused_after(ctx, p, SHORT_WAIT, what)
}

/// A request waiting `wait` that must time out because the lock is held all along.
fn refused_after(
    ctx: &Ctx,
    p: &Arc<dyn CachePersistence>,
    wait: Duration,
    what: &str,
) -> std::result::Result<(), Stop> {
    let (result, elapsed) = timed_lock(ctx, p, wait, what)?;
    match result {
        Err(e) if e.kind() == ErrorKind::LockTimeout => Ok(()),
        Ok(_guard) => Err(ctx.fail(
            format!("{what}: LockTimeout, since the lock is held"),
            format!("the lock was granted after {elapsed:?} while held"),
        )),
        Err(e) => Err(ctx.fail(
            format!("{what}: LockTimeout, since the lock is held"),
            blob::describe_error(&e),
        )),
    }
}

/// Handle B cannot take the lock handle A holds.
pub fn excludes_other_handle(ctx: &Ctx) -> std::result::Result<(), Stop> {
    let ns = ctx.namespace()?;
    let a = ctx.plugin(&ns)?;
    let b = ctx.plugin(&ns)?;
    let guard = take(ctx, &a, "first handle")?;
    let result = refused(ctx, &b, "second handle while the first holds the lock");
    drop(guard);
    result
}

/// Threads hammering the lock never overlap in the critical section.
pub fn excludes_across_threads(ctx: &Ctx) -> std::result::Result<(), Stop> {
    let ns = ctx.namespace()?;
    let threads = 4;
    let rounds = if ctx.thorough() { 100 } else { 15 };
    let inside = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..threads {
        handles.push(ctx.plugin(&ns)?);
    }
    let outcome = ctx.within(Duration::from_secs(60), "the threads' lock rounds", {
        let inside = Arc::clone(&inside);
        let overlaps = Arc::clone(&overlaps);
        move || {
            let workers: Vec<_> = handles
                .into_iter()
                .map(|p| {
                    let inside = Arc::clone(&inside);
                    let overlaps = Arc::clone(&overlaps);
                    thread::spawn(move || -> std::result::Result<(), String> {
                        for _ in 0..rounds {
                            let guard = p.lock(GRANT).map_err(|e| blob::describe_error(&e))?;
                            if inside.swap(true, Ordering::SeqCst) {
                                overlaps.fetch_add(1, Ordering::SeqCst);
                            }
                            thread::sleep(Duration::from_micros(500));
                            inside.store(false, Ordering::SeqCst);
                            drop(guard);
                        }
                        Ok(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| Err("a thread panicked".into())))
                .collect::<Vec<_>>()
        }
    })?;
    let overlaps = overlaps.load(Ordering::SeqCst);
    if overlaps > 0 {
        return Err(ctx.fail(
            "no two threads inside the lock at once",
            format!("{overlaps} entries found another thread already inside ({threads} threads x {rounds} rounds)"),
        ));
    }
    if let Some(Err(e)) = outcome.into_iter().find(|r| r.is_err()) {
        return Err(ctx.fail(format!("every lock request within {GRANT:?} is granted"), e));
    }
    Ok(())
}

/// The holder cannot take the lock again.
pub fn not_reentrant(ctx: &Ctx) -> std::result::Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    let guard = take(ctx, &p, "first lock")?;
    let result = refused(ctx, &p, "second lock by the holding handle");
    drop(guard);
    result
}

/// A request for a held lock does not return before its wait ran out.
pub fn waits_before_timeout(ctx: &Ctx) -> std::result::Result<(), Stop> {
    let ns = ctx.namespace()?;
    let a = ctx.plugin(&ns)?;
    let b = ctx.plugin(&ns)?;
    let guard = take(ctx, &a, "holder")?;
    let (result, elapsed) = timed_lock(ctx, &b, SHORT_WAIT, "waiter")?;
    drop(guard);
    // A few ms of slack for clocks that measure the wait from a slightly later instant.
    if elapsed + Duration::from_millis(5) >= SHORT_WAIT {
        Ok(())
    } else {
        Err(ctx.fail(
            format!("the waiter blocks for its whole wait of {SHORT_WAIT:?}"),
            format!(
                "it returned {} after {elapsed:?}",
                blob::describe_result(&result.map(|_| ()))
            ),
        ))
    }
}

/// A timed-out request ends with `LockTimeout` within the margin.
pub fn timeout_is_bounded(ctx: &Ctx) -> std::result::Result<(), Stop> {
    let ns = ctx.namespace()?;
    let a = ctx.plugin(&ns)?;
    let b = ctx.plugin(&ns)?;
    let guard = take(ctx, &a, "holder")?;
    let (result, elapsed) = timed_lock(ctx, &b, SHORT_WAIT, "waiter")?;
    drop(guard);
    let kind_ok = matches!(&result, Err(e) if e.kind() == ErrorKind::LockTimeout);
    if kind_ok && elapsed <= SHORT_WAIT + TIMEOUT_MARGIN {
        Ok(())
    } else {
        Err(ctx.fail(
            format!(
                "LockTimeout within {:?} of a {SHORT_WAIT:?} wait",
                SHORT_WAIT + TIMEOUT_MARGIN
            ),
            format!(
                "{} after {elapsed:?}",
                blob::describe_result(&result.map(|_| ()))
            ),
        ))
    }
}

/// A zero wait is a single try: granted when free, `LockTimeout` at once when held.
pub fn zero_wait_tries_once(ctx: &Ctx) -> std::result::Result<(), Stop> {
    let ns = ctx.namespace()?;
    let a = ctx.plugin(&ns)?;
    let b = ctx.plugin(&ns)?;
    let (free, _) = timed_lock(ctx, &a, Duration::ZERO, "zero-wait lock of the free lock")?;
    let guard = free.map_err(|e| {
        ctx.fail(
            "a zero-wait lock of the free lock is granted",
            blob::describe_error(&e),
        )
    })?;
    let (held, elapsed) = timed_lock(ctx, &b, Duration::ZERO, "zero-wait lock of a held lock")?;
    drop(guard);
    match held {
        Err(e) if e.kind() == ErrorKind::LockTimeout && elapsed <= TIMEOUT_MARGIN => Ok(()),
        other => Err(ctx.fail(
            format!("LockTimeout within {TIMEOUT_MARGIN:?} for a zero-wait lock of a held lock"),
            format!(
                "{} after {elapsed:?}",
                blob::describe_result(&other.map(|_| ()))
            ),
        )),
    }
}

/// Dropping the guard frees the lock for others.
pub fn release_on_drop(ctx: &Ctx) -> std::result::Result<(), Stop> {
    let ns = ctx.namespace()?;
    let a = ctx.plugin(&ns)?;
    let b = ctx.plugin(&ns)?;
    let guard = take(ctx, &a, "first holder")?;
    drop(guard);
    let (result, elapsed) = timed_lock(
        ctx,
        &b,
        Duration::from_secs(1),
        "second handle after the drop",
    )?;
    result.map(drop).map_err(|e| {
        ctx.fail(
            "the lock is free right after the holder dropped its guard",
            format!("{} after {elapsed:?}", blob::describe_error(&e)),
        )
    })
}

/// `release()` answers Ok and frees the lock.
pub fn release_explicit(ctx: &Ctx) -> std::result::Result<(), Stop> {
    let ns = ctx.namespace()?;
    let a = ctx.plugin(&ns)?;
    let b = ctx.plugin(&ns)?;
    let guard = take(ctx, &a, "first holder")?;
    let released = ctx.within(HANG, "LockGuard::release", move || guard.release())?;
    released.map_err(|e| ctx.fail("release returns Ok", blob::describe_error(&e)))?;
    let (result, elapsed) = timed_lock(
        ctx,
        &b,
        Duration::from_secs(1),
        "second handle after release",
    )?;
    result.map(drop).map_err(|e| {
        ctx.fail(
            "the lock is free right after release",
            format!("{} after {elapsed:?}", blob::describe_error(&e)),
        )
    })
}

/// A blocked waiter gets the lock once the holder lets go.
pub fn waiter_enters_after_release(ctx: &Ctx) -> std::result::Result<(), Stop> {
    enters_after_release(ctx, GRANT)
}

/// A waiter asking with `Duration::MAX`, the wait a caller passes for "no deadline", gets
/// the lock once the holder lets go. A plugin that computes its deadline as `now + wait`
/// panics on it (`Instant` overflows), one whose clock type cannot hold it fails.
pub fn unbounded_wait_enters_after_release(ctx: &Ctx) -> std::result::Result<(), Stop> {
    enters_after_release(ctx, Duration::MAX)
}

/// Handle B asks for the lock handle A holds, waiting at most `wait`; A releases after a
/// moment; B must enter then, not before.
fn enters_after_release(ctx: &Ctx, wait: Duration) -> std::result::Result<(), Stop> {
    let ns = ctx.namespace()?;
    let a = ctx.plugin(&ns)?;
    let b = ctx.plugin(&ns)?;
    let guard = take(ctx, &a, "holder")?;
    let hold = Duration::from_millis(200);
    let released = Arc::new(AtomicBool::new(false));
    let waiter = {
        let released = Arc::clone(&released);
        thread::spawn(move || {
            let result = b.lock(wait);
            let after_release = released.load(Ordering::SeqCst);
            (result.map(drop), after_release)
        })
    };
    thread::sleep(hold);
    released.store(true, Ordering::SeqCst);
    drop(guard);
    let joined = ctx.within(GRANT + HANG, "the waiter", move || waiter.join())?;
    let asked = if wait == Duration::MAX {
        "Duration::MAX".to_owned()
    } else {
        format!("{wait:?}")
    };
    match joined {
        Ok((Ok(()), true)) => Ok(()),
        Ok((Ok(()), false)) => Err(ctx.fail(
            "the waiter enters only after the holder released",
            "the waiter was granted the lock while it was still held",
        )),
        Ok((Err(e), _)) => Err(ctx.fail(
            format!("the waiter, waiting at most {asked}, enters after the release"),
            blob::describe_error(&e),
        )),
        Err(panic) => Err(ctx.fail(
            format!("the waiter, waiting at most {asked}, enters after the release"),
            format!("its lock call panicked: {}", run::panic_message(&*panic)),
        )),
    }
}

/// A lock held by another process excludes this one until it is released.
pub fn excludes_other_process(ctx: &Ctx) -> std::result::Result<(), Stop> {
    excluded_by_worker(ctx, SHORT_WAIT)
}

/// How long the waiter of `live_holder_kept_through_long_wait` waits: past the 2 s grace
/// the reference plugin gives lock files without a pid, and past the 5 s after which
/// MSAL Python's portalocker variant enters anyway, the limits a plugin that breaks live
/// holders' locks by age or by wait would use.
const LONG_WAIT: Duration = Duration::from_millis(5500);

/// A worker process holds the lock and stays alive: a wait here of 5.5 s (`LONG_WAIT`) ends in
/// `LockTimeout`.
pub fn live_holder_kept_through_long_wait(ctx: &Ctx) -> std::result::Result<(), Stop> {
    excluded_by_worker(ctx, LONG_WAIT)
}

/// A worker process takes the lock; a wait of `wait` here ends in `LockTimeout`; once the
/// worker releases, this process takes the lock.
fn excluded_by_worker(ctx: &Ctx, wait: Duration) -> std::result::Result<(), Stop> {
    let ns = ctx.namespace()?;
    let local = ctx.plugin(&ns)?;
    let mut worker = ctx.worker(&ns)?;
    let result = (|| {
        let remote_guard = worker.lock(GRANT).map_err(|e| {
            ctx.fail(
                "the worker process takes the free lock",
                blob::describe_error(&e),
            )
        })?;
        refused_after(
            ctx,
            &local,
            wait,
            "this process while the worker holds the lock",
        )?;
        remote_guard
            .release()
            .map_err(|e| ctx.fail("the worker releases the lock", blob::describe_error(&e)))?;
        take(ctx, &local, "this process after the worker released").map(drop)
    })();
    worker.kill();
    result
}

/// A lock held here excludes another process.
pub fn excluded_by_this_process(ctx: &Ctx) -> std::result::Result<(), Stop> {
    let ns = ctx.namespace()?;
    let local = ctx.plugin(&ns)?;
    let mut worker = ctx.worker(&ns)?;
    let result = (|| {
        let guard = take(ctx, &local, "this process")?;
        let started = Instant::now();
        let remote = worker.lock(SHORT_WAIT);
        let elapsed = started.elapsed();
        drop(guard);
        match remote {
            Err(e) if e.kind() == ErrorKind::LockTimeout => Ok(()),
            Ok(_g) => Err(ctx.fail(
                "LockTimeout in the worker while this process holds the lock",
                format!("the worker was granted the lock after {elapsed:?}"),
            )),
            Err(e) => Err(ctx.fail(
                "LockTimeout in the worker while this process holds the lock",
                blob::describe_error(&e),
            )),
        }
    })();
    worker.kill();
    result
}

/// Without a declared lock, `lock` answers `NotSupported`.
pub fn refused_when_not_declared(ctx: &Ctx) -> std::result::Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    let (result, _) = timed_lock(ctx, &p, SHORT_WAIT, "lock")?;
    check::kind(
        ctx,
        result.map(drop),
        ErrorKind::NotSupported,
        "lock without a declared lock",
    )
}
