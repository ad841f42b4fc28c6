//! `crash`: a process killed with SIGKILL in the middle of a save or while holding the
//! lock leaves a whole blob behind and a lock others can take.

use std::time::{Duration, Instant};

use identity_cache_persistence::ErrorKind;

use crate::{
    blob,
    case::{Case, Need},
    cases::{kill, lock},
    ctx::Ctx,
    failure::Stop,
};

/// How long after its holder died the lock must be free again (PROTOCOL.md, section 4;
/// the MSAL Python portalocker variant enters after 5 s anyway, so a longer bound is
/// useless).
pub const RECOVERY_BOUND: Duration = Duration::from_secs(5);

/// What a lock granted after the holder's death may take beyond [`RECOVERY_BOUND`]: the
/// lock request's own round trip (a process over the protocol on a busy machine) and a
/// plugin's polling interval, neither of which is recovery time.
pub const RECOVERY_SLACK: Duration = Duration::from_millis(500);

/// The crash cases.
pub const CASES: &[Case] = &[
    Case {
        name: "crash::kill_during_save_leaves_whole_blob",
        rule: "after a process is killed during a save, load returns the old blob or a new one, whole",
        needs: &[Need::Workers],
        run: kill_during_save_leaves_whole_blob,
    },
    Case {
        name: "crash::killed_holder_frees_lock",
        rule: "when the process holding the lock is killed, the lock is free again within the recovery bound",
        needs: &[Need::Lock, Need::Workers],
        run: killed_holder_frees_lock,
    },
];

/// Rounds of saves, each by a worker killed inside its save (kills aimed as `cases/kill.rs`
/// describes); after each kill what is stored must be the old blob or the new one, whole.
/// Many rounds, because one kill hits the torn-write window only sometimes.
pub fn kill_during_save_leaves_whole_blob(ctx: &Ctx) -> Result<(), Stop> {
    // Thorough: four times the strata, so windows a quarter as long are hit.
    let rounds = if ctx.thorough() { 192 } else { 48 };
    let len = ctx.size_up_to(kill::KILL_BLOB_LEN);
    let (ns, local) = ctx.fresh()?;
    kill::killed_saves(ctx, &ns, &local, len, rounds, |_| {})
}

/// Kill the lock holder; the lock must be free within [`RECOVERY_BOUND`] (plus
/// [`RECOVERY_SLACK`]): granted late is as wrong as not granted, and a plugin that ignores
/// the wait it is given would otherwise pass however slowly it recovers.
pub fn killed_holder_frees_lock(ctx: &Ctx) -> Result<(), Stop> {
    let ns = ctx.namespace()?;
    let local = ctx.plugin(&ns)?;
    let mut worker = ctx.worker(&ns)?;
    let guard = worker.lock(lock::GRANT).map_err(|e| {
        ctx.fail(
            "the worker process takes the free lock",
            blob::describe_error(&e),
        )
    })?;
    // The guard's release would go to the dead process; forget it rather than send it.
    std::mem::forget(guard);
    worker.kill();
    let started = Instant::now();
    let (result, elapsed) = lock::timed_lock(
        ctx,
        &local,
        RECOVERY_BOUND,
        "lock after the holder was killed",
    )?;
    let recovered = started.elapsed();
    match result {
        Ok(_guard) if recovered > RECOVERY_BOUND + RECOVERY_SLACK => Err(ctx.fail(
            format!(
                "the lock is free within {RECOVERY_BOUND:?} of its holder's death (+ {RECOVERY_SLACK:?} slack)"
            ),
            format!(
                "granted only {recovered:?} after the death, though the request waited at most {RECOVERY_BOUND:?}"
            ),
        )),
        Ok(_guard) => Ok(()),
        Err(e) if e.kind() == ErrorKind::LockTimeout => Err(ctx.fail(
            format!("the lock is free within {RECOVERY_BOUND:?} of its holder's death"),
            format!("still held after {:?}", started.elapsed()),
        )),
        Err(e) => Err(ctx.fail(
            format!("the lock is free within {RECOVERY_BOUND:?} of its holder's death"),
            format!("{} after {elapsed:?}", blob::describe_error(&e)),
        )),
    }
}
