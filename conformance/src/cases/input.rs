//! `input`: bad input (oversized blobs, corrupt stored data, invalid names) gives a typed
//! error and loses nothing.

use identity_cache_persistence::ErrorKind;

use crate::{
    blob,
    case::{Case, Need},
    cases::check,
    ctx::Ctx,
    factory::Namespace,
    failure::Stop,
    failure::skip,
};

/// Largest `max_size` the suite will actually allocate a blob of.
const LARGEST_CHECKED: usize = 64 << 20;

/// The input cases.
pub const CASES: &[Case] = &[
    Case {
        name: "input::oversized_is_too_large",
        rule: "a blob over the declared max_size is refused with TooLarge",
        needs: &[Need::MaxSize],
        run: oversized_is_too_large,
    },
    Case {
        name: "input::oversized_keeps_blob",
        rule: "a refused oversized save leaves the stored blob as it was",
        needs: &[Need::MaxSize],
        run: oversized_keeps_blob,
    },
    Case {
        name: "input::max_size_accepted",
        rule: "a blob of exactly the declared max_size is stored and loads whole",
        needs: &[Need::MaxSize],
        run: max_size_accepted,
    },
    Case {
        name: "input::corrupt_is_corrupt_data",
        rule: "load of stored data that cannot be read back fails with CorruptData",
        needs: &[],
        run: corrupt_is_corrupt_data,
    },
    Case {
        name: "input::corrupt_left_in_place",
        rule: "corrupt stored data is left as it was: a second load fails with CorruptData again (not None, not empty)",
        needs: &[],
        run: corrupt_left_in_place,
    },
    Case {
        name: "input::invalid_names_refused",
        rule: "the plugin refuses invalid cache names (empty, '.', '..', path separators, NUL, over MAX_NAME_LEN = 225 bytes) with InvalidName",
        needs: &[],
        run: invalid_names_refused,
    },
];

fn max_size(ctx: &Ctx) -> Result<usize, Stop> {
    match ctx.caps().max_size {
        Some(max) if max <= LARGEST_CHECKED => Ok(max),
        Some(max) => Err(skip(format!(
            "declared max_size {max} is above the {LARGEST_CHECKED} bytes the suite allocates"
        ))),
        None => Err(skip("plugin declares no max_size")),
    }
}

/// `save` of `max_size + 1` bytes answers `TooLarge`.
pub fn oversized_is_too_large(ctx: &Ctx) -> Result<(), Stop> {
    let max = max_size(ctx)?;
    let (_, p) = ctx.fresh()?;
    let big = blob::random(&mut ctx.rng(), max + 1);
    check::kind(
        ctx,
        p.save(&big),
        ErrorKind::TooLarge,
        "save of max_size + 1 bytes",
    )
}

/// A refused oversized save leaves the previous blob.
pub fn oversized_keeps_blob(ctx: &Ctx) -> Result<(), Stop> {
    let max = max_size(ctx)?;
    let (_, p) = ctx.fresh()?;
    let mut rng = ctx.rng();
    let original = blob::random(&mut rng, max.min(1024));
    check::save(ctx, &*p, &original, "original blob")?;
    let _ = p.save(&blob::random(&mut rng, max + 1));
    check::loads(ctx, &*p, Some(&original), "after an oversized save")
}

/// Exactly `max_size` bytes are accepted.
pub fn max_size_accepted(ctx: &Ctx) -> Result<(), Stop> {
    let max = max_size(ctx)?;
    let (_, p) = ctx.fresh()?;
    let data = blob::random(&mut ctx.rng(), max);
    check::save(ctx, &*p, &data, "blob of exactly max_size")?;
    check::loads(ctx, &*p, Some(&data), "blob of exactly max_size")
}

/// Saves a blob and corrupts it with the factory's hook (skips without the hook).
fn corrupted(
    ctx: &Ctx,
) -> Result<std::sync::Arc<dyn identity_cache_persistence::CachePersistence>, Stop> {
    let (ns, p) = ctx.fresh()?;
    check::setup_save(&*p, b"{\"about to be corrupted\": true}", "save")?;
    match ctx.factory().corrupt_stored_data(&ns) {
        Ok(()) => Ok(p),
        Err(e) if e.kind() == ErrorKind::NotSupported => Err(skip(format!(
            "the factory cannot corrupt stored data: {}",
            blob::describe_error(&e)
        ))),
        Err(e) => Err(ctx.fail(
            "the factory's corrupt_stored_data hook works",
            blob::describe_error(&e),
        )),
    }
}

/// Corrupt stored data loads as `CorruptData`.
pub fn corrupt_is_corrupt_data(ctx: &Ctx) -> Result<(), Stop> {
    let p = corrupted(ctx)?;
    check::kind(
        ctx,
        p.load(),
        ErrorKind::CorruptData,
        "load of corrupt stored data",
    )
}

/// Corrupt data is not silently replaced or removed by a load.
pub fn corrupt_left_in_place(ctx: &Ctx) -> Result<(), Stop> {
    let p = corrupted(ctx)?;
    let _ = p.load();
    check::kind(
        ctx,
        p.load(),
        ErrorKind::CorruptData,
        "second load of corrupt stored data",
    )
}

/// Invalid names are refused when the plugin is created or, at the latest, on first use.
pub fn invalid_names_refused(ctx: &Ctx) -> Result<(), Stop> {
    let base = ctx.namespace()?;
    let bad = [
        String::new(),
        ".".into(),
        "..".into(),
        "a/b".into(),
        "../escape".into(),
        "a\\b".into(),
        "nul\0byte".into(),
        "x".repeat(identity_cache_persistence::MAX_NAME_LEN + 1),
    ];
    for name in bad {
        let ns = Namespace::new(name.clone(), base.dir.clone());
        let refused = match ctx.factory().create(&ns) {
            Err(e) => Err(e),
            // Some plugins only find out on first use; that is acceptable if typed.
            Ok(p) => p.save(b"{}").and_then(|()| p.load()).map(|_| ()),
        };
        match refused {
            Err(e) if e.kind() == ErrorKind::InvalidName => {}
            other => {
                return Err(ctx.fail(
                    format!("name {name:?}: refused with InvalidName"),
                    blob::describe_result(&other),
                ));
            }
        }
    }
    Ok(())
}
