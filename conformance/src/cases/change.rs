//! `change`: the change token (`version`) moves on every save and delete, by any handle or
//! process, and only then.

use std::time::Duration;

use identity_cache_persistence::{CachePersistence, ChangeToken, ErrorKind};

use crate::{
    blob,
    case::{Case, Need},
    cases::check,
    ctx::Ctx,
    failure::Stop,
};

/// The change-detection cases.
pub const CASES: &[Case] = &[
    Case {
        name: "change::absent_is_none",
        rule: "version of a slot with nothing stored is Ok(None)",
        needs: &[Need::ChangeDetection],
        run: absent_is_none,
    },
    Case {
        name: "change::moves_on_own_save",
        rule: "the token moves when this handle saves",
        needs: &[Need::ChangeDetection],
        run: moves_on_own_save,
    },
    Case {
        name: "change::moves_on_other_handle_save",
        rule: "the token a handle reads moves when another handle on the slot saves",
        needs: &[Need::ChangeDetection],
        run: moves_on_other_handle_save,
    },
    Case {
        name: "change::moves_on_same_size_saves",
        rule: "back-to-back saves of equal-size blobs each give a token never seen before",
        needs: &[Need::ChangeDetection],
        run: moves_on_same_size_saves,
    },
    Case {
        name: "change::moves_on_identical_resave",
        rule: "saving the same bytes again moves the token (another process may have read in between)",
        needs: &[Need::ChangeDetection],
        run: moves_on_identical_resave,
    },
    Case {
        name: "change::stable_without_saves",
        rule: "without saves or deletes, the token stays equal (loads and time do not move it)",
        needs: &[Need::ChangeDetection],
        run: stable_without_saves,
    },
    Case {
        name: "change::moves_on_delete",
        rule: "after delete the token is None, and a save after the delete gives a token not seen before",
        needs: &[Need::ChangeDetection],
        run: moves_on_delete,
    },
    Case {
        name: "change::moves_on_save_by_other_process",
        rule: "the token moves when another process saves",
        needs: &[Need::ChangeDetection, Need::Workers],
        run: moves_on_save_by_other_process,
    },
    Case {
        name: "change::refused_when_not_declared",
        rule: "a plugin that declares no change detection answers version with NotSupported",
        needs: &[Need::NoChangeDetection],
        run: refused_when_not_declared,
    },
];

fn token(ctx: &Ctx, p: &dyn CachePersistence, what: &str) -> Result<Option<ChangeToken>, Stop> {
    p.version().map_err(|e| {
        ctx.fail(
            format!("{what}: version succeeds"),
            blob::describe_error(&e),
        )
    })
}

fn some_token(ctx: &Ctx, p: &dyn CachePersistence, what: &str) -> Result<ChangeToken, Stop> {
    token(ctx, p, what)?.ok_or_else(|| {
        ctx.fail(
            format!("{what}: version is Some(token) while a blob is stored"),
            "None",
        )
    })
}

/// Fails unless `new` differs from every token in `seen`.
fn fresh_token(ctx: &Ctx, seen: &[ChangeToken], new: &ChangeToken, what: &str) -> Result<(), Stop> {
    match seen.iter().position(|t| t == new) {
        None => Ok(()),
        Some(i) => Err(ctx.fail(
            format!(
                "{what}: a token different from the {} observed before",
                seen.len()
            ),
            format!(
                "token {new} equals the token observed #{} (0-based {i})",
                i + 1
            ),
        )),
    }
}

/// `version` of a fresh slot is `None`.
pub fn absent_is_none(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    match token(ctx, &*p, "fresh slot")? {
        None => Ok(()),
        Some(t) => Err(ctx.fail("version of a fresh slot is None", format!("Some({t})"))),
    }
}

/// Own saves move the token.
pub fn moves_on_own_save(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    check::save(ctx, &*p, b"first blob", "first save")?;
    let before = some_token(ctx, &*p, "after the first save")?;
    check::save(ctx, &*p, b"second, longer blob", "second save")?;
    let after = some_token(ctx, &*p, "after the second save")?;
    fresh_token(ctx, &[before], &after, "after the second save")
}

/// Another handle's save moves the token this handle reads.
pub fn moves_on_other_handle_save(ctx: &Ctx) -> Result<(), Stop> {
    let ns = ctx.namespace()?;
    let reader = ctx.plugin(&ns)?;
    let writer = ctx.plugin(&ns)?;
    check::save(ctx, &*writer, b"first blob", "first save")?;
    let before = some_token(ctx, &*reader, "reader, after the first save")?;
    check::save(
        ctx,
        &*writer,
        b"second, longer blob",
        "second save by the other handle",
    )?;
    let after = some_token(ctx, &*reader, "reader, after the other handle saved")?;
    fresh_token(
        ctx,
        &[before],
        &after,
        "reader, after the other handle saved",
    )
}

/// Equal-size saves in quick succession (within one clock tick) all move the token.
pub fn moves_on_same_size_saves(ctx: &Ctx) -> Result<(), Stop> {
    let ns = ctx.namespace()?;
    let writer = ctx.plugin(&ns)?;
    let reader = ctx.plugin(&ns)?;
    let rounds = if ctx.thorough() { 200 } else { 24 };
    let mut seen = Vec::new();
    for round in 0..rounds {
        let data = format!("same-size blob {round:04}");
        check::save(ctx, &*writer, data.as_bytes(), "same-size save")?;
        let now = some_token(ctx, &*reader, "after a same-size save")?;
        fresh_token(ctx, &seen, &now, &format!("after same-size save #{round}"))?;
        seen.push(now);
    }
    Ok(())
}

/// Re-saving identical bytes moves the token.
pub fn moves_on_identical_resave(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    check::save(ctx, &*p, b"identical bytes", "first save")?;
    let before = some_token(ctx, &*p, "after the first save")?;
    check::save(ctx, &*p, b"identical bytes", "the same bytes again")?;
    let after = some_token(ctx, &*p, "after saving the same bytes again")?;
    fresh_token(ctx, &[before], &after, "after saving the same bytes again")
}

/// Reading and waiting do not move the token.
pub fn stable_without_saves(ctx: &Ctx) -> Result<(), Stop> {
    let ns = ctx.namespace()?;
    let p = ctx.plugin(&ns)?;
    let other = ctx.plugin(&ns)?;
    check::save(ctx, &*p, b"stable blob", "save")?;
    let first = some_token(ctx, &*p, "after the save")?;
    ctx.ok("load", p.load())?;
    ctx.ok("load by another handle", other.load())?;
    std::thread::sleep(Duration::from_millis(20));
    let second = some_token(ctx, &*p, "after loads and 20 ms")?;
    let third = some_token(ctx, &*other, "another handle, after loads and 20 ms")?;
    if first == second && second == third {
        Ok(())
    } else {
        Err(ctx.fail(
            "the same token from every read while nothing is saved",
            format!("{first}, then {second}, then (other handle) {third}"),
        ))
    }
}

/// Delete turns the token into `None`; a later save gives a brand-new token.
pub fn moves_on_delete(ctx: &Ctx) -> Result<(), Stop> {
    let ns = ctx.namespace()?;
    let p = ctx.plugin(&ns)?;
    let other = ctx.plugin(&ns)?;
    check::save(ctx, &*p, b"blob before delete", "save")?;
    let before = some_token(ctx, &*other, "after the save")?;
    ctx.ok("delete", p.delete())?;
    if let Some(t) = token(ctx, &*other, "after delete")? {
        return Err(ctx.fail("version after delete is None", format!("Some({t})")));
    }
    // Same bytes, so only a real change marker (not size or content) can tell them apart.
    check::save(ctx, &*p, b"blob before delete", "save after delete")?;
    let after = some_token(ctx, &*other, "after saving again")?;
    fresh_token(ctx, &[before], &after, "after delete and save")
}

/// A save by another process moves the token.
pub fn moves_on_save_by_other_process(ctx: &Ctx) -> Result<(), Stop> {
    let ns = ctx.namespace()?;
    let p = ctx.plugin(&ns)?;
    let mut worker = ctx.worker(&ns)?;
    check::save(ctx, &*p, b"saved here", "save in this process")?;
    let before = some_token(ctx, &*p, "after the local save")?;
    let result = check::save(
        ctx,
        &*worker,
        b"saved by worker",
        "save in the worker process",
    )
    .and_then(|()| some_token(ctx, &*p, "after the worker saved"))
    .and_then(|after| {
        fresh_token(
            ctx,
            std::slice::from_ref(&before),
            &after,
            "after the worker saved",
        )
    });
    worker.kill();
    result
}

/// An undeclared capability is refused explicitly.
pub fn refused_when_not_declared(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    check::save(ctx, &*p, b"blob", "save")?;
    check::kind(
        ctx,
        p.version(),
        ErrorKind::NotSupported,
        "version without declared change detection",
    )
}
