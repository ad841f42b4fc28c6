//! Small assertions the cases share. Each returns a [`Failure`] of the running case's rule
//! that shows blobs by length and hash only.

use identity_cache_persistence::{CachePersistence, ErrorKind, Result};

use crate::{
    blob,
    ctx::Ctx,
    failure::{Failure, Stop},
};

/// `p.save(data)` succeeds.
pub fn save(ctx: &Ctx, p: &dyn CachePersistence, data: &[u8], what: &str) -> Result<(), Stop> {
    p.save(data).map_err(|e| {
        ctx.fail(
            format!("{what}: save of {} succeeds", blob::describe(data)),
            blob::describe_error_hiding(&e, data),
        )
    })
}

/// The save that sets up a case about something else (a fault, corrupt stored data)
/// succeeds. Its failure says nothing about that case's rule, so it is reported under a
/// rule of its own, naming the saving that failed (the `contract` cases judge saving).
pub fn setup_save(p: &dyn CachePersistence, data: &[u8], what: &str) -> Result<(), Stop> {
    p.save(data).map_err(|e| {
        Stop::Failed(Failure::new(
            SETUP_SAVE_RULE,
            format!("{what}: save of {} succeeds", blob::describe(data)),
            blob::describe_error_hiding(&e, data),
        ))
    })
}

/// The rule of a failed [`setup_save`].
pub const SETUP_SAVE_RULE: &str =
    "a save succeeds while nothing is wrong (the set-up of this case, before it provokes anything)";

/// `p.load()` succeeds and returns exactly `expected`.
pub fn loads(
    ctx: &Ctx,
    p: &dyn CachePersistence,
    expected: Option<&[u8]>,
    what: &str,
) -> Result<(), Stop> {
    let want = blob::describe_loaded(&expected.map(<[u8]>::to_vec));
    match p.load() {
        Ok(got) if got.as_deref() == expected => Ok(()),
        Ok(got) => Err(ctx.fail(
            format!("{what}: load returns {want}"),
            format!("load returned {}", blob::describe_loaded(&got)),
        )),
        Err(e) => Err(ctx.fail(
            format!("{what}: load returns {want}"),
            blob::describe_error(&e),
        )),
    }
}

/// `result` is an error of `kind`.
pub fn kind<T: std::fmt::Debug>(
    ctx: &Ctx,
    result: Result<T>,
    kind: ErrorKind,
    what: &str,
) -> Result<(), Stop> {
    match result {
        Err(e) if e.kind() == kind => Ok(()),
        other => Err(ctx.fail(
            format!("{what}: an error of kind {kind}"),
            blob::describe_result(&other),
        )),
    }
}

/// `p.delete()` succeeds with `expected`.
pub fn deletes(
    ctx: &Ctx,
    p: &dyn CachePersistence,
    expected: bool,
    what: &str,
) -> Result<(), Stop> {
    match p.delete() {
        Ok(got) if got == expected => Ok(()),
        other => Err(ctx.fail(
            format!("{what}: delete returns Ok({expected})"),
            blob::describe_result(&other),
        )),
    }
}
