//! `unlock NAME`: remove a lock file whose holder is provably dead, never a live one's.

use identity_cache_persistence::lock::{BreakStale, FileLock};
use serde::Serialize;

use crate::{
    context::Context,
    exit::{Code, Failure},
    inventory::{holder, process_name},
    output,
};

#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Outcome {
    /// No lock file.
    Free,
    Removed {
        pid: Option<u32>,
        reason: &'static str,
    },
}

pub fn run(context: &Context, name: &str, json: bool) -> Result<Code, Failure> {
    let path = context.lock_path(name)?;
    let outcome = match FileLock::new(&path).break_stale()? {
        BreakStale::Free => Outcome::Free,
        BreakStale::Removed(holder, reason) => Outcome::Removed {
            pid: holder.pid,
            reason,
        },
        BreakStale::Held(found) => {
            let who = holder(found.pid, found.pid.and_then(process_name).as_deref());
            return Err(Failure::new(
                Code::LockHeld,
                format!(
                    "refused: {} is held by {who}, which is alive; it was left alone. \
                     A sign-in holds it for milliseconds; if it stays, that process hangs: stop it{}",
                    path.display(),
                    found
                        .pid
                        .map(|p| format!(" (kill {p})"))
                        .unwrap_or_default()
                ),
            ));
        }
        // A future outcome: report it rather than claim success.
        _ => {
            return Err(Failure::new(
                Code::Failed,
                format!("{}: unexpected lock state", path.display()),
            ));
        }
    };
    if json {
        output::json(&outcome);
        return Ok(Code::Ok);
    }
    match outcome {
        Outcome::Free => println!(
            "{} does not exist: the cache {name} is not locked.",
            path.display()
        ),
        Outcome::Removed { pid, reason } => println!(
            "Removed {}: {reason}{}.",
            path.display(),
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        ),
    }
    Ok(Code::Ok)
}
