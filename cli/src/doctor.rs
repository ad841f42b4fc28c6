//! `doctor`: the secure storage, the directory, the files, the locks and the contents, each
//! problem in plain words with its fix. Exits 0 only when healthy.

use std::{fs, io};

use identity_cache_persistence::token_cache::TokenCacheDocument;

use crate::{
    cli::DoctorArgs,
    context::Context,
    exit::{Code, Failure},
    findings::{Finding, Report},
    inventory::{self, Backend, Cache, Lock},
    keyring, output, show,
};

pub fn run(context: &Context, args: &DoctorArgs, json: bool) -> Result<Code, Failure> {
    let mut findings = Vec::new();
    let keyring_usable = secure_storage(context, args, &mut findings);
    if directory(context, &mut findings) {
        match inventory::scan(context) {
            Ok(inventory) => {
                files(&inventory.caches, &inventory.quarantined, &mut findings);
                locks(&inventory.caches, &mut findings);
                contents(context, &inventory.caches, keyring_usable, &mut findings);
                for path in &inventory.quarantined {
                    findings.push(
                        Finding::ok(
                            "cache",
                            "quarantined_copy",
                            format!(
                                "A copy of a corrupt cache was kept aside at {}.",
                                path.display()
                            ),
                        )
                        .warning()
                        .detail("It may hold tokens; delete it once you no longer need it."),
                    );
                }
            }
            Err(failure) => findings.push(Finding::problem(
                "directory",
                "unreadable",
                failure.code,
                failure.message,
                FIX_OWNERSHIP.replace("DIR", &context.dir.display().to_string()),
            )),
        }
    }
    let exit_code = Report::verdict(&findings);
    let report = Report {
        directory: context.dir.display().to_string(),
        profile: context.profile.as_str(),
        bus: context.bus().to_owned(),
        healthy: exit_code == 0,
        exit_code,
        findings,
    };
    if json {
        output::json(&report);
    } else {
        report.print_human();
    }
    Ok(Code::ALL
        .into_iter()
        .find(|c| c.value() == exit_code)
        .unwrap_or(Code::Failed))
}

const FIX_NO_BUS: &str = "\
There is no D-Bus session bus in this session (usual over SSH, on WSL, in containers and CI).
Start one for this shell: eval \"$(dbus-launch --sh-syntax)\" (package dbus-x11),
or run the program inside one: dbus-run-session -- bash
then start a Secret Service on it (gnome-keyring, see the next problem).
Where no keyring can run, the SDKs can store the cache in a plaintext file instead
(unsafe_allow_unencrypted_storage; check with identity-cache doctor --allow-unencrypted).";

const FIX_NO_SERVICE: &str = "\
Install and start gnome-keyring on this bus:
  sudo apt install gnome-keyring        (or: dnf install gnome-keyring)
  echo -n 'a password' | gnome-keyring-daemon --unlock --components=secrets
The second line creates the login keyring with that password and unlocks it.
Desktop sessions start it at login; KWallet or KeePassXC with Secret Service
integration work as well.";

const FIX_LOCKED: &str = "\
Unlock the keyring: log in to the desktop session (it unlocks the login keyring), or open
\"Passwords and Keys\" (seahorse) and unlock the Login keyring. Without a desktop:
  echo -n 'your keyring password' | gnome-keyring-daemon --replace --unlock --components=secrets
(restarts the daemon with the login keyring unlocked). The SDKs never unlock it themselves:
that needs a prompt, which headless sessions cannot show.";

const FIX_NO_COLLECTION: &str = "\
Create the login keyring and make it the default:
  echo -n 'a password' | gnome-keyring-daemon --unlock --components=secrets
or in \"Passwords and Keys\" (seahorse): New keyring, then Set as default.";

const FIX_FAILED: &str = "\
Restart the Secret Service (gnome-keyring-daemon --replace --components=secrets) and retry;
if it persists, the message above says what failed.";

const FIX_OWNERSHIP: &str = "\
The directory and its files must be yours and readable and writable by you:
  sudo chown -R \"$(id -u):$(id -g)\" DIR && chmod 700 DIR
(a command once run with sudo, such as `sudo az login`, leaves it owned by root).";

/// The Secret Service: the typed check, then the SDKs' own validation probe. Whether the
/// keyring can be read.
fn secure_storage(context: &Context, args: &DoctorArgs, findings: &mut Vec<Finding>) -> bool {
    let check = keyring::check(context)
        .and_then(|()| keyring::validate(context, &context.dir.join("msal.cache")));
    let problem = match check {
        Ok(()) => {
            findings.push(Finding::ok(
                "secure_storage",
                "usable",
                format!(
                    "The Secret Service on {} is usable: a validation item was written, read back and deleted.",
                    context.bus()
                ),
            ));
            return true;
        }
        Err(problem) => problem,
    };
    if problem.cause == "unsupported" {
        // macOS Keychain and Windows DPAPI are not inspected: say so, and judge the rest.
        findings.push(Finding::ok("secure_storage", "not_inspected", problem.message).warning());
        return false;
    }
    let (summary, fix) = match problem.cause {
        "no_bus" => ("No D-Bus session bus.", FIX_NO_BUS),
        "no_service" => (
            "No Secret Service (gnome-keyring) on the D-Bus session bus.",
            FIX_NO_SERVICE,
        ),
        "locked" => ("The keyring is locked.", FIX_LOCKED),
        "no_default_collection" => ("The keyring has no default collection.", FIX_NO_COLLECTION),
        _ => ("The Secret Service does not work.", FIX_FAILED),
    };
    let mut finding = Finding::problem("secure_storage", problem.cause, problem.code, summary, fix)
        .detail(problem.message);
    if context.kernel_keyring
        && matches!(problem.cause, "no_bus" | "no_service")
        && kernel_keyring(context, summary, findings)
    {
        // This crate's programs are served; the SDKs that only know the Secret Service
        // (JS, Python, .NET) are not, so the missing service stays on record as a warning.
        finding = finding.warning();
        finding.fix = Some(format!(
            "Nothing to do for programs built on identity-cache-persistence. For the Python, JS \
             and .NET SDKs, which need a Secret Service:\n{fix}"
        ));
        findings.push(finding);
        return false;
    }
    if args.allow_unencrypted {
        finding = finding.warning();
        finding.fix = Some(
            "Plaintext cache files are allowed (--allow-unencrypted): the SDKs store the cache \
             unencrypted (mode 0600) when they are set up to."
                .to_owned(),
        );
    }
    findings.push(finding);
    false
}

/// Where no Secret Service is reachable: whether the kernel keyring takes its place, as
/// `persistence_for` decides, with a finding saying so and why.
fn kernel_keyring(context: &Context, why: &str, findings: &mut Vec<Finding>) -> bool {
    match crate::kernel_keyring::validate(&context.dir) {
        Ok(()) => {
            findings.push(
                Finding::ok(
                    "secure_storage",
                    "kernel_keyring",
                    format!(
                        "Backend in use: kernel-keyring. {why} So programs built on identity-cache-persistence keep \
                         each cache in its file encrypted (AES-256-GCM) under a key in the persistent kernel \
                         keyring: a validation key was added, read back and unlinked."
                    ),
                )
                .detail(
                    "The key lives in kernel memory only: after a reboot the cache reads as empty and \
                     the next sign-in starts it over.",
                ),
            );
            true
        }
        Err(error) => {
            findings.push(
                Finding::ok(
                    "secure_storage",
                    "kernel_keyring_unusable",
                    format!("The kernel keyring cannot take the Secret Service's place: {error}."),
                )
                .warning(),
            );
            false
        }
    }
}

/// The cache directory: exists, is a directory, is ours, can be listed and written, and
/// is private. Whether its contents can be checked.
fn directory(context: &Context, findings: &mut Vec<Finding>) -> bool {
    let dir = &context.dir;
    let shown = dir.display().to_string();
    let fix_ownership = FIX_OWNERSHIP.replace("DIR", &shown);
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            findings.push(Finding::ok(
                "directory",
                "absent",
                format!("{shown} does not exist yet: the SDKs create it (mode 0700) at their first save."),
            ));
            return false;
        }
        Err(e) => {
            findings.push(Finding::problem(
                "directory",
                "inaccessible",
                Code::Permissions,
                format!("Cannot look at the cache directory {shown}: {e}."),
                fix_ownership,
            ));
            return false;
        }
    };
    if !meta.is_dir() {
        findings.push(Finding::problem(
            "directory",
            "not_a_directory",
            Code::Permissions,
            format!("{shown} is not a directory; the SDKs cannot keep caches in it."),
            format!("Move it away: mv {shown} {shown}.old"),
        ));
        return false;
    }
    if let Some(owner) = foreign_owner(&meta) {
        findings.push(Finding::problem(
            "directory",
            "foreign_owner",
            Code::Permissions,
            format!("The cache directory {shown} belongs to {owner}, not to you."),
            fix_ownership.clone(),
        ));
    }
    if let Err(e) = fs::read_dir(dir) {
        findings.push(Finding::problem(
            "directory",
            "unreadable",
            Code::Permissions,
            format!("Cannot list the cache directory {shown}: {e}."),
            fix_ownership,
        ));
        return false;
    }
    // The probe the SDKs' first save amounts to: a new file in the directory.
    if let Err(e) = tempfile::Builder::new()
        .prefix(".identity-cache-doctor-")
        .tempfile_in(dir)
    {
        findings.push(Finding::problem(
            "directory",
            "unwritable",
            Code::Permissions,
            format!("Cannot create files in the cache directory {shown}: {e}."),
            fix_ownership,
        ));
        return true;
    }
    match too_wide(&meta, 0o700) {
        Some(mode) => findings.push(Finding::problem(
            "directory",
            "mode_too_wide",
            Code::ModesTooWide,
            format!(
                "The cache directory {shown} has mode {mode:04o}: other users can look into it."
            ),
            format!("chmod 700 {shown}"),
        )),
        None => findings.push(Finding::ok(
            "directory",
            "private",
            format!("The cache directory {shown} is yours, readable, writable and private."),
        )),
    }
    true
}

/// Every file of the caches and the quarantined copies: ours, readable, 0600.
fn files(caches: &[Cache], quarantined: &[std::path::PathBuf], findings: &mut Vec<Finding>) {
    let mut checked = 0;
    let paths = caches
        .iter()
        .filter_map(|c| c.path.as_deref())
        .chain(quarantined.iter().map(|p| p.as_path()));
    let mut problems = Vec::new();
    for path in paths {
        checked += 1;
        let shown = path.display().to_string();
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        if let Some(owner) = foreign_owner(&meta) {
            problems.push(Finding::problem(
                "file",
                "foreign_owner",
                Code::Permissions,
                format!("{shown} belongs to {owner}, not to you."),
                format!("sudo chown \"$(id -u):$(id -g)\" {shown}"),
            ));
        }
        if let Err(e) = fs::File::open(path) {
            problems.push(Finding::problem(
                "file",
                "unreadable",
                Code::Permissions,
                format!("Cannot read {shown}: {e}."),
                format!("sudo chown \"$(id -u):$(id -g)\" {shown} && chmod 600 {shown}"),
            ));
        }
        if let Some(mode) = too_wide(&meta, 0o600) {
            problems.push(Finding::problem(
                "file",
                "mode_too_wide",
                Code::ModesTooWide,
                format!("{shown} has mode {mode:04o}: other users can read it, and a cache holds tokens."),
                format!("chmod 600 {shown}"),
            ));
        }
    }
    if problems.is_empty() && checked > 0 {
        findings.push(Finding::ok(
            "file",
            "private",
            format!(
                "{checked} cache file{} yours and private (0600).",
                if checked == 1 { " is" } else { "s are" }
            ),
        ));
    }
    findings.extend(problems);
}

fn locks(caches: &[Cache], findings: &mut Vec<Finding>) {
    for cache in caches {
        let name = &cache.name;
        match &cache.lock {
            Lock::Free => {}
            Lock::Held { pid, process } => findings.push(Finding::ok(
                "lock",
                "held",
                format!(
                    "The cache {name} is locked right now by {}, which is alive.",
                    inventory::holder(*pid, process.as_deref())
                ),
            )
            .detail("A sign-in holds the lock for milliseconds; if it stays, that process hangs: stop it.")),
            Lock::Stale { pid, reason } => findings.push(
                Finding::problem(
                    "lock",
                    "stale_lock",
                    Code::StaleLock,
                    format!(
                        "The lock file of the cache {name} was left behind{}: {reason}.",
                        pid.map(|p| format!(" by pid {p}")).unwrap_or_default()
                    ),
                    format!(
                        "identity-cache unlock {name}\n(the next sign-in removes it too, after checking the same way)"
                    ),
                ),
            ),
            Lock::Unreadable { error } => findings.push(Finding::problem(
                "lock",
                "lock_unreadable",
                Code::Permissions,
                format!("Cannot inspect the lock file of the cache {name}: {error}."),
                "Make the lock file yours or remove it: sudo chown \"$(id -u):$(id -g)\" <file>".to_owned(),
            )),
        }
    }
}

/// Whether each cache parses; keyring caches only when the keyring can be read.
fn contents(
    context: &Context,
    caches: &[Cache],
    keyring_usable: bool,
    findings: &mut Vec<Finding>,
) {
    for cache in caches {
        let readable = match cache.backend {
            Backend::PlaintextFile | Backend::KernelKeyring => true,
            Backend::SecretService => keyring_usable,
            Backend::SecretServiceWithoutMarker => {
                keyring_usable
                    && cache
                        .keyring_item
                        .as_ref()
                        .is_some_and(|i| i.cache_name.is_some())
            }
            Backend::MarkerWithoutItem | Backend::LockFileOnly => false,
        };
        if !readable {
            continue;
        }
        let name = &cache.name;
        let blob = match show::load(context, name) {
            Ok((_, blob)) => blob,
            Err(failure) => {
                findings.push(Finding::problem(
                    "cache",
                    "unreadable",
                    failure.code,
                    format!("Cannot read the cache {name}: {}", failure.message),
                    "See the message; `identity-cache clear NAME` starts the cache over."
                        .replace("NAME", name),
                ));
                continue;
            }
        };
        match TokenCacheDocument::parse(&blob) {
            Ok(doc) => {
                let summary = crate::summary::summarize(&doc, crate::time::now_epoch());
                findings.push(Finding::ok(
                    "cache",
                    "parses",
                    format!(
                        "The cache {name} parses: {} account{}, {} token{}.",
                        summary.accounts.len(),
                        if summary.accounts.len() == 1 { "" } else { "s" },
                        summary.tokens.len(),
                        if summary.tokens.len() == 1 { "" } else { "s" },
                    ),
                ));
            }
            Err(corrupt) => findings.push(Finding::problem(
                "cache",
                "corrupt_cache",
                Code::CorruptCache,
                format!("The cache {name} does not parse: {corrupt}."),
                format!(
                    "The next sign-in keeps a copy at {}.corrupt-<epoch seconds> and starts an empty cache\n(you sign in again). To start over now: identity-cache clear {name}",
                    context.dir.join(name).display()
                ),
            )),
        }
    }
}

/// The permission bits beyond `allowed`, when there are any.
#[cfg(unix)]
fn too_wide(meta: &fs::Metadata, allowed: u32) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    (mode & !allowed & 0o777 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn too_wide(_: &fs::Metadata, _: u32) -> Option<u32> {
    None
}

/// "uid 0" when the file is not the effective user's.
#[cfg(unix)]
fn foreign_owner(meta: &fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    (meta.uid() != me).then(|| format!("uid {}", meta.uid()))
}

#[cfg(not(unix))]
fn foreign_owner(_: &fs::Metadata) -> Option<String> {
    None
}
