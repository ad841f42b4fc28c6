//! `contract`: what load, save and delete return, byte for byte, for one slot and between
//! slots and handles.

use crate::{
    blob,
    case::{Case, Need},
    cases::check,
    ctx::Ctx,
    failure::Stop,
};

/// The contract cases.
pub const CASES: &[Case] = &[
    Case {
        name: "contract::absent_is_none",
        rule: "load of a slot where nothing was ever saved returns Ok(None)",
        needs: &[],
        run: absent_is_none,
    },
    Case {
        name: "contract::empty_blob_is_not_absent",
        rule: "an empty blob, once saved, loads as Some(empty), not None",
        needs: &[],
        run: empty_blob_is_not_absent,
    },
    Case {
        name: "contract::binary_round_trip",
        rule: "every byte value, NUL included, round-trips unchanged",
        needs: &[],
        run: binary_round_trip,
    },
    Case {
        name: "contract::non_utf8_round_trip",
        rule: "bytes that are not UTF-8, and whitespace, BOM and CRLF, round-trip unchanged (never decoded, trimmed or re-encoded)",
        needs: &[],
        run: non_utf8_round_trip,
    },
    Case {
        name: "contract::round_trip_1mib",
        rule: "a 1 MiB blob round-trips whole",
        needs: &[Need::Accepts(1 << 20)],
        run: round_trip_1mib,
    },
    Case {
        name: "contract::round_trip_8mib",
        rule: "an 8 MiB blob round-trips whole",
        needs: &[Need::Accepts(8 << 20)],
        run: round_trip_8mib,
    },
    Case {
        name: "contract::save_replaces_whole_blob",
        rule: "a save replaces the whole blob: a shorter blob after a longer one loads without the old tail",
        needs: &[],
        run: save_replaces_whole_blob,
    },
    Case {
        name: "contract::delete_true_then_false",
        rule: "delete returns true when something was stored, then false",
        needs: &[],
        run: delete_true_then_false,
    },
    Case {
        name: "contract::delete_absent_is_false",
        rule: "delete of a slot where nothing was ever saved returns false",
        needs: &[],
        run: delete_absent_is_false,
    },
    Case {
        name: "contract::load_after_delete_is_none",
        rule: "after delete, load returns Ok(None)",
        needs: &[],
        run: load_after_delete_is_none,
    },
    Case {
        name: "contract::save_after_delete",
        rule: "a save after a delete stores the new blob",
        needs: &[],
        run: save_after_delete,
    },
    Case {
        name: "contract::isolation_by_name",
        rule: "slots of different names do not see each other's saves or deletes",
        needs: &[],
        run: isolation_by_name,
    },
    Case {
        name: "contract::handles_share_slot",
        rule: "two handles on one slot each load the blob the other saved last",
        needs: &[],
        run: handles_share_slot,
    },
    Case {
        name: "contract::saved_blob_outlives_handle",
        rule: "a saved blob is still there for a handle created after the saving handle was dropped",
        needs: &[],
        run: saved_blob_outlives_handle,
    },
];

/// Load of a never-saved slot returns `Ok(None)`.
pub fn absent_is_none(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    check::loads(ctx, &*p, None, "fresh slot")
}

/// An empty blob loads as `Some(vec![])`: "absent" and "empty" are different answers.
pub fn empty_blob_is_not_absent(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    check::save(ctx, &*p, b"", "empty blob")?;
    check::loads(ctx, &*p, Some(b""), "after saving an empty blob")
}

/// All 256 byte values, runs of NUL and 0xFF, round-trip.
pub fn binary_round_trip(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    let mut data: Vec<u8> = (0..=255u8).collect();
    data.extend((0..=255u8).rev());
    data.extend([0u8; 64]);
    data.extend([0xffu8; 64]);
    data.extend(blob::random(&mut ctx.rng(), 1000));
    check::save(ctx, &*p, &data, "binary blob")?;
    check::loads(ctx, &*p, Some(&data), "binary blob")
}

/// Invalid UTF-8, a BOM, CRLF and surrounding whitespace come back untouched.
pub fn non_utf8_round_trip(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    let mut data = Vec::new();
    data.extend_from_slice(b"\xef\xbb\xbf  \r\n\t{\"k\": \"");
    data.extend_from_slice(b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\xff\xfe\xc0\x80");
    data.extend_from_slice(b"\"}\r\n\r\n   \n\0");
    assert!(
        std::str::from_utf8(&data).is_err(),
        "the case's data must not be UTF-8"
    );
    check::save(ctx, &*p, &data, "non-UTF-8 blob")?;
    check::loads(ctx, &*p, Some(&data), "non-UTF-8 blob")
}

fn round_trip_of(ctx: &Ctx, len: usize) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    let data = blob::random(&mut ctx.rng(), len);
    check::save(ctx, &*p, &data, "large blob")?;
    check::loads(ctx, &*p, Some(&data), "large blob")
}

/// A 1 MiB random blob round-trips.
pub fn round_trip_1mib(ctx: &Ctx) -> Result<(), Stop> {
    round_trip_of(ctx, 1 << 20)
}

/// An 8 MiB random blob round-trips.
pub fn round_trip_8mib(ctx: &Ctx) -> Result<(), Stop> {
    round_trip_of(ctx, 8 << 20)
}

/// A short save after a long one leaves no tail of the long one.
pub fn save_replaces_whole_blob(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    let mut rng = ctx.rng();
    // 64 KiB, or the largest blob the plugin declares it takes: a declared limit is not
    // this case's business (the input cases judge it).
    let long_len = ctx
        .caps()
        .max_size
        .map_or(64 * 1024, |max| max.min(64 * 1024));
    let long = blob::random(&mut rng, long_len);
    let short = blob::random(&mut rng, 10);
    check::save(ctx, &*p, &long, "long blob")?;
    check::save(ctx, &*p, &short, "short blob after a long one")?;
    check::loads(ctx, &*p, Some(&short), "short blob after a long one")
}

/// `delete` answers true when something was stored, then false.
pub fn delete_true_then_false(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    check::save(ctx, &*p, b"to be deleted", "before delete")?;
    check::deletes(ctx, &*p, true, "first delete after a save")?;
    check::deletes(ctx, &*p, false, "second delete")
}

/// `delete` of a never-saved slot answers false.
pub fn delete_absent_is_false(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    check::deletes(ctx, &*p, false, "delete on a fresh slot")
}

/// After a delete, load answers `None`.
pub fn load_after_delete_is_none(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    check::save(ctx, &*p, b"to be deleted", "before delete")?;
    ctx.ok("delete", p.delete())?;
    check::loads(ctx, &*p, None, "after delete")
}

/// Saving after a delete works and stores the new blob.
pub fn save_after_delete(ctx: &Ctx) -> Result<(), Stop> {
    let (_, p) = ctx.fresh()?;
    check::save(ctx, &*p, b"first", "before delete")?;
    ctx.ok("delete", p.delete())?;
    check::save(ctx, &*p, b"second blob", "after delete")?;
    check::loads(ctx, &*p, Some(b"second blob"), "save after delete")
}

/// Two names are two slots: saves and deletes in one are invisible in the other.
pub fn isolation_by_name(ctx: &Ctx) -> Result<(), Stop> {
    let (_, a) = ctx.fresh()?;
    let (_, b) = ctx.fresh()?;
    check::save(ctx, &*a, b"blob of slot A", "slot A")?;
    check::loads(ctx, &*b, None, "slot B while only A has a blob")?;
    check::save(ctx, &*b, b"blob of slot B!", "slot B")?;
    check::loads(ctx, &*a, Some(b"blob of slot A"), "slot A after B saved")?;
    ctx.ok("delete of slot A", a.delete())?;
    check::loads(
        ctx,
        &*b,
        Some(b"blob of slot B!"),
        "slot B after A was deleted",
    )
}

/// Two handles on one slot see each other's latest saves (no stale per-handle copy).
pub fn handles_share_slot(ctx: &Ctx) -> Result<(), Stop> {
    let ns = ctx.namespace()?;
    let first = ctx.plugin(&ns)?;
    let second = ctx.plugin(&ns)?;
    check::save(ctx, &*first, b"saved by the first handle", "first handle")?;
    check::loads(
        ctx,
        &*second,
        Some(b"saved by the first handle"),
        "second handle",
    )?;
    check::save(
        ctx,
        &*second,
        b"saved by the second handle",
        "second handle",
    )?;
    check::loads(
        ctx,
        &*first,
        Some(b"saved by the second handle"),
        "first handle, after it loaded before",
    )?;
    check::save(ctx, &*first, b"third", "first handle again")?;
    check::loads(
        ctx,
        &*second,
        Some(b"third"),
        "second handle, after it loaded before",
    )
}

/// The blob outlives the handle that saved it.
pub fn saved_blob_outlives_handle(ctx: &Ctx) -> Result<(), Stop> {
    let ns = ctx.namespace()?;
    let saver = ctx.plugin(&ns)?;
    check::save(
        ctx,
        &*saver,
        b"kept after the handle is gone",
        "saving handle",
    )?;
    drop(saver);
    let later = ctx.plugin(&ns)?;
    check::loads(
        ctx,
        &*later,
        Some(b"kept after the handle is gone"),
        "a new handle",
    )
}
