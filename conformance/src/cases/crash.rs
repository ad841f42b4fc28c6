//! `crash`: a process killed with SIGKILL in the middle of a save or while holding the
//! lock leaves a whole blob behind and a lock others can take.

use std::{
    thread,
    time::{Duration, Instant},
};

use identity_cache_persistence::ErrorKind;

use crate::{
    blob,
    case::{Case, Failure, Need},
    cases::{check, lock},
    ctx::Ctx,
};

/// How long after its holder died the lock must be free again (PROTOCOL.md, section 4;
/// the MSAL Python portalocker variant enters after 5 s anyway, so a longer bound is
/// useless).
pub const RECOVERY_BOUND: Duration = Duration::from_secs(5);

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

/// Kill a worker at a random moment while it saves large blobs; what is stored afterwards
/// must be one of the blobs saved, whole. Repeated, because one kill hits the torn-write
/// window only sometimes.
pub fn kill_during_save_leaves_whole_blob(ctx: &Ctx) -> Result<(), Failure> {
    let rounds = if ctx.thorough() { 40 } else { 4 };
    let mut rng = ctx.rng();
    for round in 0..rounds {
        let ns = ctx.namespace()?;
        let local = ctx.plugin(&ns)?;
        let initial = blob::self_checking(rng.u64(..), ctx.size_up_to(256 * 1024));
        let max_len = ctx.size_up_to(1024 * 1024);
        check::save(ctx, &*local, &initial, "initial blob")?;
        let mut worker = ctx.worker(&ns)?;
        let pid = worker.pid();
        let delay = Duration::from_millis(rng.u64(5..60));
        let sizes: Vec<(u64, usize)> = (0..50)
            .map(|_| (rng.u64(..), rng.usize(max_len / 16..=max_len)))
            .collect();
        thread::scope(|s| {
            let saver = &*worker;
            s.spawn(move || {
                for (id, len) in sizes {
                    if saver.save(&blob::self_checking(id, len)).is_err() {
                        break;
                    }
                }
            });
            thread::sleep(delay);
            kill_pid(pid);
        });
        worker.kill();
        let loaded = local.load();
        match loaded {
            Ok(Some(bytes)) => {
                blob::check_self_checking(&bytes).map_err(|why| {
                    ctx.fail(
                        format!("round {round}: a whole saved blob after the saver was killed after {delay:?}"),
                        why,
                    )
                })?;
            }
            other => {
                return Err(ctx.fail(
                    format!("round {round}: a whole saved blob after the saver was killed after {delay:?}"),
                    blob::describe_result(&other.map(|o| o.map(|b| blob::describe(&b)))),
                ));
            }
        }
    }
    Ok(())
}

/// Kill the lock holder; the lock must be free within [`RECOVERY_BOUND`].
pub fn killed_holder_frees_lock(ctx: &Ctx) -> Result<(), Failure> {
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
    match result {
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

/// SIGKILL to the worker's process group (workers lead their own group, so a plugin
/// started through `sh -c` dies with its shell), while another thread is mid-call.
fn kill_pid(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; a stale pid only fails.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }
    #[cfg(not(unix))]
    let _ = pid;
}
