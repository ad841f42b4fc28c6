//! `faults`: real storage faults provoked through the factory's hook give the right error
//! kind, and the blob stored before the fault is intact once the fault is cleared.

use std::time::Duration;

use identity_cache_persistence::ErrorKind;

use crate::{
    blob,
    case::{Case, Need},
    cases::{check, crash::RECOVERY_BOUND},
    ctx::Ctx,
    factory::Fault,
    failure::{Stop, skip},
};

/// The fault cases: for each fault, one case for the kind and one for the kept blob.
pub const CASES: &[Case] = &[
    Case {
        name: "faults::storage_unavailable_kind",
        rule: "a save while the storage cannot be reached fails with StorageUnavailable",
        needs: &[],
        run: storage_unavailable_kind,
    },
    Case {
        name: "faults::storage_unavailable_load_kind",
        rule: "a load while the storage cannot be reached fails with StorageUnavailable (never None: the caller would take the cache for empty)",
        needs: &[],
        run: storage_unavailable_load_kind,
    },
    Case {
        name: "faults::storage_unavailable_version_kind",
        rule: "a change token read while the storage cannot be reached is a token or StorageUnavailable, never None (the caller would take the cache for deleted)",
        needs: &[Need::ChangeDetection],
        run: storage_unavailable_version_kind,
    },
    Case {
        name: "faults::storage_unavailable_keeps_blob",
        rule: "a save that failed because the storage could not be reached loses nothing stored",
        needs: &[],
        run: storage_unavailable_keeps_blob,
    },
    Case {
        name: "faults::access_denied_kind",
        rule: "a save the OS refuses fails with AccessDenied",
        needs: &[],
        run: access_denied_kind,
    },
    Case {
        name: "faults::access_denied_delete_kind",
        rule: "a delete the OS refuses fails with AccessDenied, never Ok(false): nothing was said to be stored when a blob is",
        needs: &[],
        run: access_denied_delete_kind,
    },
    Case {
        name: "faults::access_denied_keeps_blob",
        rule: "a save the OS refused loses nothing stored",
        needs: &[],
        run: access_denied_keeps_blob,
    },
    Case {
        name: "faults::disk_full_kind",
        rule: "a save on a full disk fails with StorageFull",
        needs: &[],
        run: disk_full_kind,
    },
    Case {
        name: "faults::disk_full_keeps_blob",
        rule: "a save that failed on a full disk loses nothing stored",
        needs: &[],
        run: disk_full_keeps_blob,
    },
    Case {
        name: "faults::release_refused_is_reported",
        rule: "LockGuard::release answers Ok only when the lock is free: a release the storage refuses is an error, not a lock left held behind an Ok",
        needs: &[Need::Lock],
        run: release_refused_is_reported,
    },
    Case {
        name: "faults::release_unreachable_is_reported",
        rule: "LockGuard::release answers Ok only when the lock is free: a release while the storage cannot be reached is an error, not a lock left held behind an Ok",
        needs: &[Need::Lock],
        run: release_unreachable_is_reported,
    },
    Case {
        name: "faults::refused_lock_is_not_a_timeout",
        rule: "a request for a free lock that the storage refuses is granted or fails with AccessDenied, never LockTimeout: nobody holds the lock, and waiting cannot help",
        needs: &[Need::Lock],
        run: refused_lock_is_not_a_timeout,
    },
    Case {
        name: "faults::refused_release_leaves_nothing_stuck",
        rule: "a release the storage refused leaves nothing that blocks the handle that made it: once the fault is cleared, that handle takes the lock again within the recovery bound",
        needs: &[Need::Lock],
        run: refused_release_leaves_nothing_stuck,
    },
];

/// What a save under `fault` returned, with the blob stored before it.
struct Attempt {
    original: Vec<u8>,
    result: identity_cache_persistence::Result<()>,
    p: std::sync::Arc<dyn identity_cache_persistence::CachePersistence>,
}

/// Saves an original blob, injects `fault`, tries to save a new blob, clears the fault.
fn attempt(ctx: &Ctx, fault: Fault) -> Result<Attempt, Stop> {
    let (ns, p) = ctx.fresh()?;
    let mut rng = ctx.rng();
    let original = blob::random(&mut rng, ctx.size_up_to(1024));
    check::setup_save(&*p, &original, "original blob")?;
    // The replacement is larger than any space left, so a full disk cannot take it.
    let replacement = blob::random(&mut rng, ctx.size_up_to(256 * 1024));
    let saver = std::sync::Arc::clone(&p);
    let result = under_fault(ctx, &ns, fault, "save", move || saver.save(&replacement))?;
    Ok(Attempt {
        original,
        result,
        p,
    })
}

/// Runs `op` (`what`, for messages) with `fault` in force in `ns`, within 30 s, and clears
/// the fault whatever `op` did: a failure of the hooks is the case's failure, a hook the
/// factory lacks makes the case skip.
fn under_fault<T: Send + 'static>(
    ctx: &Ctx,
    ns: &crate::Namespace,
    fault: Fault,
    what: &str,
    op: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Stop> {
    inject(ctx, ns, fault)?;
    let result = ctx.within(
        Duration::from_secs(30),
        &format!("{what} under a fault"),
        op,
    );
    let cleared = ctx.factory().clear_fault(ns, fault);
    let result = result?;
    cleared.map_err(|e| {
        ctx.fail(
            format!("the factory's clear_fault({}) hook works", fault.as_str()),
            blob::describe_error(&e),
        )
    })?;
    Ok(result)
}

/// Saves a small blob in a fresh namespace, then runs `op` (`what`, for messages) on the
/// handle with `fault` in force (see [`under_fault`]).
fn stored_then_under_fault<T: Send + 'static>(
    ctx: &Ctx,
    fault: Fault,
    what: &str,
    op: impl FnOnce(&dyn identity_cache_persistence::CachePersistence) -> T + Send + 'static,
) -> Result<T, Stop> {
    let (ns, p) = ctx.fresh()?;
    check::setup_save(&*p, b"{\"stored before the fault\": true}", "original blob")?;
    under_fault(ctx, &ns, fault, what, move || op(&*p))
}

/// Injects `fault` through the factory's hook; a hook the factory lacks makes the case skip.
fn inject(ctx: &Ctx, ns: &crate::Namespace, fault: Fault) -> Result<(), Stop> {
    match ctx.factory().inject_fault(ns, fault) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotSupported => Err(skip(format!(
            "the factory cannot provoke {}: {}",
            fault.as_str(),
            blob::describe_error(&e)
        ))),
        Err(e) => Err(ctx.fail(
            format!("the factory's inject_fault({}) hook works", fault.as_str()),
            blob::describe_error(&e),
        )),
    }
}

fn kind_case(ctx: &Ctx, fault: Fault, kind: ErrorKind) -> Result<(), Stop> {
    let a = attempt(ctx, fault)?;
    check::kind(
        ctx,
        a.result,
        kind,
        &format!("save under {}", fault.as_str()),
    )
}

fn keeps_case(ctx: &Ctx, fault: Fault) -> Result<(), Stop> {
    let a = attempt(ctx, fault)?;
    if a.result.is_ok() {
        // The save claims success; then the new blob must be there, which `kind` cases
        // judge. Here only loss matters: the old or the new blob, whole.
        return match a.p.load() {
            Ok(Some(_)) => Ok(()),
            other => Err(ctx.fail(
                format!("after a save under {}, a whole blob", fault.as_str()),
                blob::describe_result(&other.map(|o| blob::describe_loaded(&o))),
            )),
        };
    }
    check::loads(
        ctx,
        &*a.p,
        Some(&a.original),
        &format!("after a failed save under {}", fault.as_str()),
    )
}

/// Storage unreachable: `StorageUnavailable`.
pub fn storage_unavailable_kind(ctx: &Ctx) -> Result<(), Stop> {
    kind_case(
        ctx,
        Fault::StorageUnavailable,
        ErrorKind::StorageUnavailable,
    )
}

/// Storage unreachable: a load is an error, not "nothing stored".
pub fn storage_unavailable_load_kind(ctx: &Ctx) -> Result<(), Stop> {
    let result = stored_then_under_fault(ctx, Fault::StorageUnavailable, "load", |p| p.load())?;
    check::kind(
        ctx,
        result.map(|o| o.map(|b| blob::describe(&b))),
        ErrorKind::StorageUnavailable,
        "load under storage_unavailable",
    )
}

/// Storage unreachable: a change token is never `None` for a stored blob. A token (a
/// store that keeps it apart from the blob) or `StorageUnavailable` are both right.
pub fn storage_unavailable_version_kind(ctx: &Ctx) -> Result<(), Stop> {
    let result =
        stored_then_under_fault(ctx, Fault::StorageUnavailable, "version", |p| p.version())?;
    match result {
        Ok(Some(_)) => Ok(()),
        Err(e) if e.kind() == ErrorKind::StorageUnavailable => Ok(()),
        Ok(None) => Err(ctx.fail(
            "version under storage_unavailable: a token or StorageUnavailable",
            "Ok(None): the stored blob is reported gone",
        )),
        Err(e) => Err(ctx.fail(
            "version under storage_unavailable: a token or StorageUnavailable",
            blob::describe_error(&e),
        )),
    }
}

/// Storage unreachable: nothing lost.
pub fn storage_unavailable_keeps_blob(ctx: &Ctx) -> Result<(), Stop> {
    keeps_case(ctx, Fault::StorageUnavailable)
}

/// Access refused: `AccessDenied`.
pub fn access_denied_kind(ctx: &Ctx) -> Result<(), Stop> {
    kind_case(ctx, Fault::AccessDenied, ErrorKind::AccessDenied)
}

/// Access refused: a delete fails, rather than saying nothing was stored.
pub fn access_denied_delete_kind(ctx: &Ctx) -> Result<(), Stop> {
    let result = stored_then_under_fault(ctx, Fault::AccessDenied, "delete", |p| p.delete())?;
    check::kind(
        ctx,
        result,
        ErrorKind::AccessDenied,
        "delete under access_denied",
    )
}

/// Access refused: nothing lost.
pub fn access_denied_keeps_blob(ctx: &Ctx) -> Result<(), Stop> {
    keeps_case(ctx, Fault::AccessDenied)
}

/// Disk full: `StorageFull`.
pub fn disk_full_kind(ctx: &Ctx) -> Result<(), Stop> {
    kind_case(ctx, Fault::DiskFull, ErrorKind::StorageFull)
}

/// Disk full: nothing lost.
pub fn disk_full_keeps_blob(ctx: &Ctx) -> Result<(), Stop> {
    keeps_case(ctx, Fault::DiskFull)
}

/// A release while the OS refuses access either fails, or has freed the lock: once the
/// fault is cleared another handle takes it at once. An `Ok` that left the lock held
/// would block every later acquirer with no error to show for it.
pub fn release_refused_is_reported(ctx: &Ctx) -> Result<(), Stop> {
    release_is_reported(ctx, Fault::AccessDenied)
}

/// The same while the storage cannot be reached: a release that could not even look at
/// its lock file must not answer `Ok`.
pub fn release_unreachable_is_reported(ctx: &Ctx) -> Result<(), Stop> {
    release_is_reported(ctx, Fault::StorageUnavailable)
}

/// A release under `fault` either fails, or has freed the lock once the fault is cleared.
fn release_is_reported(ctx: &Ctx, fault: Fault) -> Result<(), Stop> {
    let (ns, p) = ctx.fresh()?;
    // Another process where there can be one: a process may rightly recover a lock file
    // naming itself that none of its handles holds, which would hide a left-over lock.
    let other: Box<dyn identity_cache_persistence::CachePersistence> =
        if ctx.launcher().is_some() && ctx.caps().shared_across_processes {
            ctx.worker(&ns)?
        } else {
            Box::new(ctx.plugin(&ns)?)
        };
    let guard = ctx.ok("lock of a fresh slot", p.lock(Duration::from_secs(5)))?;
    let released = under_fault(ctx, &ns, fault, "release", move || guard.release())?;
    if released.is_err() {
        return Ok(());
    }
    match other.lock(Duration::ZERO) {
        Ok(guard) => {
            let _ = guard.release();
            Ok(())
        }
        Err(e) => Err(ctx.fail(
            format!(
                "after release answered Ok under {}, another handle takes the lock at once once the fault is cleared",
                fault.as_str()
            ),
            blob::describe_error(&e),
        )),
    }
}

/// A request for the free lock under `access_denied`, in a fresh slot and again once the
/// lock has been held and released (whatever the lock keeps between holds then exists):
/// granted (a lock that needs no new file may still be taken) or `AccessDenied`. A plugin
/// that takes an error of making its lock file for "someone else holds it" retries until
/// its wait runs out and answers `LockTimeout`, sending its caller after a holder that does
/// not exist.
pub fn refused_lock_is_not_a_timeout(ctx: &Ctx) -> Result<(), Stop> {
    let (ns, p) = ctx.fresh()?;
    lock_under_refusal(ctx, &ns, &p, "a fresh slot")?;
    let held = ctx.ok("lock of the free lock", p.lock(Duration::from_secs(5)))?;
    ctx.ok("release of that lock", held.release())?;
    lock_under_refusal(ctx, &ns, &p, "a slot whose lock was held and released")
}

/// Asks for the free lock of `p` under `access_denied`: granted or `AccessDenied`.
fn lock_under_refusal(
    ctx: &Ctx,
    ns: &crate::Namespace,
    p: &std::sync::Arc<dyn identity_cache_persistence::CachePersistence>,
    slot: &str,
) -> Result<(), Stop> {
    let wait = Duration::from_secs(2);
    let locker = std::sync::Arc::clone(p);
    let result = under_fault(ctx, ns, Fault::AccessDenied, "lock", move || {
        locker.lock(wait).and_then(|guard| guard.release())
    })?;
    match result {
        Err(e) if e.kind() != ErrorKind::AccessDenied => Err(ctx.fail(
            format!("in {slot}, the free lock asked for with a wait of {wait:?} under access_denied: granted or AccessDenied"),
            blob::describe_error(&e),
        )),
        _ => Ok(()),
    }
}

/// Whatever a release under `access_denied` answered, what it could not undo must not keep
/// the lock from the handle that released it: once the fault is cleared, that handle takes
/// the lock again within [`RECOVERY_BOUND`]. A lock file left behind names a live process,
/// its own, which no other process can tell from a holder; only that process can.
pub fn refused_release_leaves_nothing_stuck(ctx: &Ctx) -> Result<(), Stop> {
    let (ns, p) = ctx.fresh()?;
    let guard = ctx.ok("lock of a fresh slot", p.lock(Duration::from_secs(5)))?;
    // An error is the right answer here (see `release_refused_is_reported`); an Ok that
    // left the lock held fails below.
    let _answer = under_fault(ctx, &ns, Fault::AccessDenied, "release", move || {
        guard.release()
    })?;
    let again = ctx.within(
        RECOVERY_BOUND + Duration::from_secs(5),
        "lock again after a refused release",
        move || p.lock(RECOVERY_BOUND).map(|guard| guard.release()),
    )?;
    match again {
        Ok(_) => Ok(()),
        Err(e) => Err(ctx.fail(
            format!(
                "once the fault is cleared, the handle whose release was refused takes the lock again within {RECOVERY_BOUND:?}"
            ),
            blob::describe_error(&e),
        )),
    }
}
