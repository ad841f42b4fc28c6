//! `security`: private file modes, no plaintext at rest when encryption is declared, and
//! the blob absent from `Debug` output and error messages.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use identity_cache_persistence::{CachePersistence, Error};

use crate::{
    blob,
    case::{Case, Need},
    cases::{check, lock},
    ctx::Ctx,
    factory::Fault,
    failure::Stop,
};

/// The security cases.
pub const CASES: &[Case] = &[
    Case {
        name: "security::files_private",
        rule: "every file the plugin creates under its directory is readable and writable by the owner only (0600 or stricter), also with umask 022",
        needs: &[Need::Unix],
        run: files_private,
    },
    Case {
        name: "security::dirs_private",
        rule: "every directory the plugin creates is accessible by the owner only (0700 or stricter), also with umask 022",
        needs: &[Need::Unix],
        run: dirs_private,
    },
    Case {
        name: "security::no_plaintext_at_rest",
        rule: "a plugin that declares encryption at rest leaves no file under its directory containing the blob (raw, base64 or hex)",
        needs: &[Need::EncryptsAtRest],
        run: no_plaintext_at_rest,
    },
    Case {
        name: "security::blob_not_in_debug",
        rule: "the plugin's Debug output never contains the blob",
        needs: &[],
        run: blob_not_in_debug,
    },
    Case {
        name: "security::blob_not_in_logs",
        rule: "nothing the plugin logs (tracing events and spans on the calling thread; a plugin process's stderr) contains the blob",
        needs: &[],
        run: blob_not_in_logs,
    },
    Case {
        name: "security::blob_not_in_errors",
        rule: "no error message (Display, Debug or source chain) contains the blob",
        needs: &[],
        run: blob_not_in_errors,
    },
];

/// A secret marker for this case run: the plugin must never reveal it.
fn secret(ctx: &Ctx) -> Vec<u8> {
    let mut rng = ctx.rng();
    let hex: String = (0..24)
        .map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)]))
        .collect();
    format!("{{\"secret\":\"conformance-secret-{hex}\"}}").into_bytes()
}

/// Forms in which a leaked secret may show up in text: raw, base64 (of the marker alone
/// and of the whole blob, whose alignment differs), hex, and a Debug list of bytes.
fn leak_forms(secret: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    let b64 =
        |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes)[..24].to_string();
    let core = String::from_utf8_lossy(&secret[11..secret.len() - 2]).into_owned();
    let hex: String = core.bytes().map(|b| format!("{b:02x}")).collect();
    let debug_bytes = format!("{:?}", &core.as_bytes()[..12]);
    vec![
        core.clone(),
        b64(core.as_bytes()),
        b64(secret),
        hex,
        debug_bytes
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    ]
}

/// The first form of `secret` found in `text`.
fn leaked<'a>(text: &str, forms: &'a [String]) -> Option<&'a str> {
    forms
        .iter()
        .find(|f| text.contains(f.as_str()))
        .map(String::as_str)
}

/// Sets the umask to 022 for its lifetime. The umask is process-wide: holders are
/// serialised (two cases restoring each other's values would leave a stricter mask in
/// force mid-check), and 022, the usual value, does not disturb other cases meanwhile.
struct Umask {
    #[cfg(unix)]
    previous: libc::mode_t,
    _serial: std::sync::MutexGuard<'static, ()>,
}

static UMASK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Umask {
    fn set_022() -> Self {
        let serial = UMASK.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: umask(2) only swaps the process's file-mode mask.
        #[cfg(unix)]
        let previous = unsafe { libc::umask(0o022) };
        Umask {
            #[cfg(unix)]
            previous,
            _serial: serial,
        }
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        // SAFETY: as in `set_022`.
        #[cfg(unix)]
        unsafe {
            libc::umask(self.previous);
        }
    }
}

/// Every path below `dir` (not `dir` itself), depth first.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}

#[cfg(unix)]
fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn mode_of(_: &Path) -> Option<u32> {
    None
}

/// Paths of `kind` under `dir` that group or others can access.
fn too_open(dir: &Path, want_dirs: bool) -> Vec<String> {
    walk(dir)
        .into_iter()
        .filter(|p| p.is_dir() == want_dirs && !p.is_symlink())
        .filter_map(|p| {
            let mode = mode_of(&p)?;
            (mode & 0o077 != 0).then(|| {
                format!(
                    "{} has mode {mode:04o}",
                    p.strip_prefix(dir).unwrap_or(&p).display()
                )
            })
        })
        .collect()
}

/// Exercise the plugin so it creates whatever files it uses: blob, lock file, markers.
fn exercise(
    ctx: &Ctx,
    p: &Arc<dyn CachePersistence>,
    data: &[u8],
) -> Result<Option<identity_cache_persistence::LockGuard>, Stop> {
    check::save(ctx, &**p, data, "save")?;
    ctx.ok("load", p.load())?;
    let _ = p.version();
    if ctx.caps().exclusive_lock {
        return lock::take(ctx, p, "lock").map(Some);
    }
    Ok(None)
}

/// Files the plugin creates are 0600 or stricter under umask 022.
pub fn files_private(ctx: &Ctx) -> Result<(), Stop> {
    let _umask = Umask::set_022();
    let (ns, p) = ctx.fresh()?;
    let guard = exercise(ctx, &p, b"{\"file modes\": true}")?;
    // While the lock is held (lock files exist), and after release.
    let mut open = too_open(&ns.dir, false);
    drop(guard);
    check::save(ctx, &*p, b"{\"file modes\": 2}", "second save")?;
    open.extend(too_open(&ns.dir, false));
    if open.is_empty() {
        Ok(())
    } else {
        Err(ctx.fail(
            "files under the plugin's directory are 0600 or stricter",
            open.join("; "),
        ))
    }
}

/// Directories the plugin creates are 0700 or stricter under umask 022. The namespace
/// directory is removed first, so a plugin that keeps files there creates it itself, as
/// it would create a missing cache directory (see [`Namespace`](crate::Namespace)).
pub fn dirs_private(ctx: &Ctx) -> Result<(), Stop> {
    let _umask = Umask::set_022();
    let ns = ctx.namespace()?;
    // Missing, so that a plugin keeping its files there creates it (and shows its mode).
    let _ = fs::remove_dir(&ns.dir);
    let p = ctx.plugin(&ns)?;
    check::save(
        ctx,
        &*p,
        b"{\"dir modes\": true}",
        "save into a missing namespace directory",
    )?;
    let mut open = Vec::new();
    if ns.dir.is_dir()
        && let Some(mode) = mode_of(&ns.dir)
        && mode & 0o077 != 0
    {
        open.push(format!(
            "the namespace directory it created has mode {mode:04o}"
        ));
    }
    open.extend(too_open(&ns.dir, true));
    if open.is_empty() {
        Ok(())
    } else {
        Err(ctx.fail(
            "directories the plugin creates are 0700 or stricter",
            open.join("; "),
        ))
    }
}

/// With encryption declared, no file contains the blob in a recognizable form.
pub fn no_plaintext_at_rest(ctx: &Ctx) -> Result<(), Stop> {
    let data = secret(ctx);
    let forms = leak_forms(&data);
    let (ns, p) = ctx.fresh()?;
    let guard = exercise(ctx, &p, &data)?;
    let mut found = Vec::new();
    for path in walk(&ns.dir) {
        if let Ok(bytes) = fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes);
            if let Some(form) = leaked(&text, &forms) {
                found.push(format!(
                    "{} contains the blob ({} form)",
                    path.strip_prefix(&ns.dir).unwrap_or(&path).display(),
                    form_name(&forms, form)
                ));
            }
        }
    }
    drop(guard);
    if found.is_empty() {
        Ok(())
    } else {
        Err(ctx.fail(
            "no plaintext of the blob under the plugin's directory",
            found.join("; "),
        ))
    }
}

fn form_name(forms: &[String], form: &str) -> &'static str {
    match forms.iter().position(|f| f == form) {
        Some(0) => "raw",
        Some(1) | Some(2) => "base64",
        Some(3) => "hex",
        _ => "byte list",
    }
}

/// `Debug` of the plugin, after it saved and loaded the blob, does not contain it.
pub fn blob_not_in_debug(ctx: &Ctx) -> Result<(), Stop> {
    if !ctx.factory().in_process() {
        // Passing here would prove nothing: the Debug output would be the suite's own
        // client's. The process's stderr is checked by `blob_not_in_logs`.
        return Err(crate::failure::skip(
            "a plugin process has no Debug output of its own (its stderr is checked by security::blob_not_in_logs)",
        ));
    }
    let data = secret(ctx);
    let forms = leak_forms(&data);
    let (_, p) = ctx.fresh()?;
    let before = format!("{p:?} {p:#?}");
    check::save(ctx, &*p, &data, "save")?;
    let after_save = format!("{p:?} {p:#?}");
    ctx.ok("load", p.load())?;
    let after_load = format!("{p:?} {p:#?}");
    for (when, text) in [
        ("after save", &after_save),
        ("after load", &after_load),
        ("before save", &before),
    ] {
        if let Some(form) = leaked(text, &forms) {
            return Err(ctx.fail(
                "Debug output without the blob",
                format!(
                    "Debug output {when} contains the blob ({} form)",
                    form_name(&forms, form)
                ),
            ));
        }
    }
    Ok(())
}

/// Errors provoked while the blob is stored (timeouts, refusals, corrupt data, faults,
/// oversize) do not mention it.
pub fn blob_not_in_errors(ctx: &Ctx) -> Result<(), Stop> {
    let data = secret(ctx);
    let forms = leak_forms(&data);
    let (ns, p) = ctx.fresh()?;
    check::save(ctx, &*p, &data, "save")?;
    let mut errors: Vec<(String, Error)> = Vec::new();
    let caps = *ctx.caps();
    if caps.exclusive_lock {
        let guard = lock::take(ctx, &p, "lock")?;
        let other = ctx.plugin(&ns)?;
        if let (Err(e), _) = lock::timed_lock(
            ctx,
            &other,
            std::time::Duration::from_millis(50),
            "second lock",
        )? {
            errors.push(("lock timeout".into(), e));
        }
        drop(guard);
    } else if let Err(e) = p.lock(std::time::Duration::from_millis(50)) {
        errors.push(("lock (not supported)".into(), e));
    }
    if !caps.change_detection
        && let Err(e) = p.version()
    {
        errors.push(("version (not supported)".into(), e));
    }
    if let Some(max) = caps.max_size
        && max <= 64 << 20
    {
        let mut big = data.repeat(max / data.len() + 1);
        big.truncate(max + 1);
        if let Err(e) = p.save(&big) {
            errors.push(("oversized save".into(), e));
        }
    }
    for fault in Fault::ALL {
        if ctx.factory().inject_fault(&ns, fault).is_ok() {
            if let Err(e) = p.save(&data) {
                errors.push((format!("save under {}", fault.as_str()), e));
            }
            if let Err(e) = p.load() {
                errors.push((format!("load under {}", fault.as_str()), e));
            }
            ctx.factory().clear_fault(&ns, fault).map_err(|e| {
                ctx.fail(
                    "the factory clears the fault it injected",
                    blob::describe_error(&e),
                )
            })?;
        }
    }
    if ctx.factory().corrupt_stored_data(&ns).is_ok()
        && let Err(e) = p.load()
    {
        errors.push(("load of corrupt data".into(), e));
    }
    if errors.is_empty() {
        return Err(crate::failure::skip(
            "no error could be provoked (no lock timeout, no declared limits, no factory hooks)",
        ));
    }
    for (what, e) in &errors {
        let mut texts = vec![e.to_string(), format!("{e:?}")];
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            texts.push(s.to_string());
            source = s.source();
        }
        for text in texts {
            if let Some(form) = leaked(&text, &forms) {
                return Err(ctx.fail(
                    "error messages without the blob",
                    format!(
                        "the error of {what} (kind {}) contains the blob ({} form)",
                        e.kind(),
                        form_name(&forms, form)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Logs written while the plugin saves, loads, locks, times out, deletes and fails do not
/// contain the blob. Calls run on this thread, where the log capture sees them; plugin
/// processes are started on this thread and ended inside the capture, so all of their stderr is seen.
pub fn blob_not_in_logs(ctx: &Ctx) -> Result<(), Stop> {
    let data = secret(ctx);
    let forms = leak_forms(&data);
    let caps = *ctx.caps();
    let (outcome, logs) = crate::log_capture::capture(|| -> Result<(), Stop> {
        let (ns, p) = ctx.fresh()?;
        let other = ctx.plugin(&ns)?;
        check::save(ctx, &*p, &data, "save")?;
        ctx.ok("load", p.load())?;
        let _ = p.version();
        if caps.exclusive_lock {
            let guard = ctx.ok("lock", p.lock(lock::GRANT))?;
            let _ = other.lock(std::time::Duration::from_millis(20));
            drop(guard);
        }
        if ctx.factory().corrupt_stored_data(&ns).is_ok() {
            let _ = p.load();
        }
        let _ = p.delete();
        Ok(())
    });
    outcome?;
    match leaked(&logs, &forms) {
        None => Ok(()),
        Some(form) => Err(ctx.fail(
            "logs without the blob",
            format!(
                "a log line of the plugin contains the blob ({} form)",
                form_name(&forms, form)
            ),
        )),
    }
}
