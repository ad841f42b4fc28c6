//! `names`: every valid cache name works, and names that differ only late, or one of which
//! extends the other, are separate caches, also in one directory. Plugins derive files,
//! keyring attributes and keys from the name: one that truncates, hashes badly or forgets
//! the room its suffixes need is caught here.

use identity_cache_persistence::MAX_NAME_LEN;

use crate::{case::Case, cases::check, ctx::Ctx, factory::Namespace, failure::Stop};

/// The name cases.
pub const CASES: &[Case] = &[
    Case {
        name: "names::every_valid_name_works",
        rule: "every valid cache name can be saved, loaded, locked and deleted: names of MAX_NAME_LEN bytes, and names with '.' and '_' as the SDKs use them",
        needs: &[],
        run: every_valid_name_works,
    },
    Case {
        name: "names::long_common_prefix_isolated",
        rule: "two names in one directory are two caches, also when they differ only in their last byte or one extends the other",
        needs: &[],
        run: long_common_prefix_isolated,
    },
];

/// The suffix that pads `base`'s name to `len` bytes with `fill` (base names are ASCII).
fn padding_to(base: &Namespace, len: usize, fill: char) -> String {
    let mut suffix = String::from("-");
    while base.name.len() + suffix.len() < len {
        suffix.push(fill);
    }
    suffix
}

/// Each name: save, load, lock (when declared) while saving again, load, delete.
pub fn every_valid_name_works(ctx: &Ctx) -> Result<(), Stop> {
    let base = ctx.namespace()?;
    let suffixes = [
        padding_to(&base, MAX_NAME_LEN, 'x'),
        ".cache.nocae".to_owned(),
        "_tool.cache".to_owned(),
    ];
    for suffix in suffixes {
        let ns = ctx.namespace_beside(&base, &suffix);
        let what = format!(
            "name of {} bytes ending {:?}",
            ns.name.len(),
            tail(&ns.name)
        );
        let p = ctx.plugin(&ns)?;
        check::save(ctx, &*p, b"first", &what)?;
        check::loads(ctx, &*p, Some(b"first"), &what)?;
        if ctx.caps().exclusive_lock {
            let guard = ctx.ok(&format!("{what}: lock"), p.lock(super::lock::GRANT))?;
            check::save(ctx, &*p, b"second, under the lock", &what)?;
            ctx.ok(&format!("{what}: release"), guard.release())?;
        } else {
            check::save(ctx, &*p, b"second, under the lock", &what)?;
        }
        check::loads(ctx, &*p, Some(b"second, under the lock"), &what)?;
        let deleted = ctx.ok(&format!("{what}: delete"), p.delete())?;
        if !deleted {
            return Err(ctx.fail(
                format!("{what}: delete of a stored blob answers true"),
                "false",
            ));
        }
        check::loads(ctx, &*p, None, &format!("{what}, after delete"))?;
    }
    Ok(())
}

/// Pairs of names in one directory: equal but for the last byte at the length limit,
/// and a name and its extension (`msal.cache`, `msal.cache.nocae`). Each saves, the other
/// must not see it, and deleting one leaves the other.
pub fn long_common_prefix_isolated(ctx: &Ctx) -> Result<(), Stop> {
    let base = ctx.namespace()?;
    let long = padding_to(&base, MAX_NAME_LEN - 1, 'p');
    let pairs = [
        (format!("{long}a"), format!("{long}b")),
        (String::new(), ".nocae".to_owned()),
    ];
    for (first, second) in pairs {
        let a_ns = if first.is_empty() {
            base.clone()
        } else {
            ctx.namespace_beside(&base, &first)
        };
        let b_ns = ctx.namespace_beside(&base, &second);
        let what = format!(
            "names of {} and {} bytes ending {:?} and {:?}",
            a_ns.name.len(),
            b_ns.name.len(),
            tail(&a_ns.name),
            tail(&b_ns.name)
        );
        let a = ctx.plugin(&a_ns)?;
        let b = ctx.plugin(&b_ns)?;
        check::save(ctx, &*a, b"blob of name A", &format!("{what}: A"))?;
        check::loads(
            ctx,
            &*b,
            None,
            &format!("{what}: B while only A has a blob"),
        )?;
        check::save(ctx, &*b, b"blob of name B!", &format!("{what}: B"))?;
        check::loads(
            ctx,
            &*a,
            Some(b"blob of name A"),
            &format!("{what}: A after B saved"),
        )?;
        ctx.ok(&format!("{what}: delete A"), a.delete())?;
        check::loads(
            ctx,
            &*b,
            Some(b"blob of name B!"),
            &format!("{what}: B after A was deleted"),
        )?;
        ctx.ok(&format!("{what}: delete B"), b.delete())?;
    }
    Ok(())
}

/// The last characters of a name, for messages (long names are mostly padding).
fn tail(name: &str) -> &str {
    let start = name.len().saturating_sub(16);
    name.get(start..).unwrap_or(name)
}
