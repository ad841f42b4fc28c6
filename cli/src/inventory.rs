//! `list`, and the scan of the cache directory and the keyring that `doctor` shares: which
//! caches exist, where each is stored, and the state of its lock.

use std::{
    collections::BTreeSet,
    fs, io,
    path::{Path, PathBuf},
};

use identity_cache_persistence::{
    KeyringProfile, cache_name_of_lock, is_lock_guard,
    lock::{FileLock, LockState},
    token_cache::Quarantine,
};
use serde::Serialize;

use crate::{
    context::Context,
    exit::{Code, Failure},
    keyring::{self, Item, Problem},
    output,
    time::rfc3339,
};

/// Where a cache is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// The blob in a file, unencrypted (0600): the SDKs' unsafe_allow_unencrypted_storage.
    PlaintextFile,
    /// The blob in a file encrypted under a key in the kernel keyring (a JWE): Linux
    /// without a Secret Service.
    KernelKeyring,
    /// A Secret Service item, with its empty marker file for change detection.
    SecretService,
    /// A Secret Service item written by a tool that keeps no marker file.
    SecretServiceWithoutMarker,
    /// An empty marker file whose Secret Service item was not found (deleted, or the
    /// keyring could not be asked).
    MarkerWithoutItem,
    /// Only a lock file: the cache was never saved, or was deleted.
    LockFileOnly,
}

impl Backend {
    pub fn describe(self) -> &'static str {
        match self {
            Backend::PlaintextFile => "plaintext file",
            Backend::KernelKeyring => "encrypted file, key in the kernel keyring",
            Backend::SecretService => "Secret Service item + marker file",
            Backend::SecretServiceWithoutMarker => "Secret Service item (no marker file)",
            Backend::MarkerWithoutItem => "marker file (no Secret Service item found)",
            Backend::LockFileOnly => "lock file only (no cache)",
        }
    }
}

/// The lock file of a cache, as [`FileLock::inspect`] sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Lock {
    Free,
    Held {
        pid: Option<u32>,
        process: Option<String>,
    },
    Stale {
        pid: Option<u32>,
        reason: &'static str,
    },
    Unreadable {
        error: String,
    },
}

impl Lock {
    pub fn describe(&self) -> String {
        match self {
            Lock::Free => "free".to_owned(),
            Lock::Held { pid, process } => format!("held by {}", holder(*pid, process.as_deref())),
            Lock::Stale { pid: Some(pid), .. } => format!("stale (pid {pid} is gone)"),
            Lock::Stale { pid: None, .. } => "stale (no holder)".to_owned(),
            Lock::Unreadable { .. } => "unreadable".to_owned(),
        }
    }
}

/// "pid 123 (python3)", "pid 123", "a process that has not written its pid".
pub fn holder(pid: Option<u32>, process: Option<&str>) -> String {
    match (pid, process) {
        (Some(pid), Some(name)) => format!("pid {pid} ({name})"),
        (Some(pid), None) => format!("pid {pid}"),
        (None, _) => "a process that has not written its pid".to_owned(),
    }
}

/// One cache.
#[derive(Debug, Clone, Serialize)]
pub struct Cache {
    /// The cache name; for a shared keyring item with no name, `(every name)`.
    pub name: String,
    pub backend: Backend,
    /// [`Backend::describe`] of `backend`, for people reading the JSON.
    pub stored_in: &'static str,
    /// The file or marker file.
    pub path: Option<PathBuf>,
    /// Bytes of the cache blob, when known without a locked keyring.
    pub size: Option<u64>,
    pub last_change: Option<String>,
    /// The file's permission bits, e.g. `0600`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyring_item: Option<Item>,
    pub lock: Lock,
}

impl Cache {
    fn set_backend(&mut self, backend: Backend) {
        self.backend = backend;
        self.stored_in = backend.describe();
    }
}

/// Everything found.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub directory: PathBuf,
    pub directory_exists: bool,
    pub profile: &'static str,
    pub bus: String,
    pub caches: Vec<Cache>,
    /// Copies of corrupt caches the SDKs kept aside; they may contain tokens.
    pub quarantined: Vec<PathBuf>,
    /// Why the keyring could not be asked, if it could not.
    pub keyring_problem: Option<Problem>,
}

/// A file in the cache directory, by its role.
struct Files {
    caches: Vec<(String, fs::Metadata)>,
    locks: BTreeSet<String>,
    quarantined: Vec<PathBuf>,
}

/// Scans the directory and the keyring. A missing directory is an empty inventory; one
/// that cannot be read is a failure with [`Code::Permissions`].
pub fn scan(context: &Context) -> Result<Inventory, Failure> {
    let files = read_dir(&context.dir)?;
    let (items, keyring_problem) = match keyring::items(context) {
        Ok(items) => (items, None),
        Err(problem) => (Vec::new(), Some(problem)),
    };
    let mut claimed = vec![false; items.len()];
    let mut caches = Vec::new();
    for (name, meta) in &files.caches {
        let path = context.dir.join(name);
        let mut cache = Cache {
            name: name.clone(),
            backend: Backend::PlaintextFile,
            stored_in: Backend::PlaintextFile.describe(),
            path: Some(path),
            size: Some(meta.len()),
            last_change: meta.modified().ok().and_then(rfc3339),
            mode: mode_of(meta),
            keyring_item: None,
            lock: lock_state(context, name),
        };
        if meta.len() > 0 && crate::kernel_keyring::is_cache_file(&context.dir.join(name)) {
            cache.set_backend(Backend::KernelKeyring);
        }
        if meta.len() == 0 {
            // An empty file is the marker of a keyring item (the SDKs never save 0 bytes).
            let found = items
                .iter()
                .position(|item| belongs(item, name, context.profile));
            cache.set_backend(Backend::MarkerWithoutItem);
            if let Some(index) = found {
                claimed[index] = true;
                let item = &items[index];
                cache.set_backend(Backend::SecretService);
                cache.size = item.size.map(|s| s as u64);
                cache.last_change = item.modified.clone().or(cache.last_change);
                cache.keyring_item = Some(item.clone());
            }
        }
        caches.push(cache);
    }
    let names: BTreeSet<&str> = files.caches.iter().map(|(n, _)| n.as_str()).collect();
    for (item, claimed) in items.iter().zip(claimed) {
        if claimed {
            continue;
        }
        let name = item
            .cache_name
            .clone()
            .unwrap_or_else(|| "(every name)".to_owned());
        // A Python-layout item of a name whose file is a plaintext cache: both exist.
        let lock = if item.cache_name.is_some() {
            lock_state(context, &name)
        } else {
            Lock::Free
        };
        caches.push(Cache {
            path: None,
            backend: Backend::SecretServiceWithoutMarker,
            stored_in: Backend::SecretServiceWithoutMarker.describe(),
            size: item.size.map(|s| s as u64),
            last_change: item.modified.clone(),
            mode: None,
            keyring_item: Some(item.clone()),
            lock,
            name,
        });
    }
    for name in &files.locks {
        let has_cache = names.contains(name.as_str()) || caches.iter().any(|c| c.name == *name);
        if !has_cache {
            caches.push(Cache {
                name: name.clone(),
                backend: Backend::LockFileOnly,
                stored_in: Backend::LockFileOnly.describe(),
                path: None,
                size: None,
                last_change: None,
                mode: None,
                keyring_item: None,
                lock: lock_state(context, name),
            });
        }
    }
    caches.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Inventory {
        directory: context.dir.clone(),
        directory_exists: context.dir.exists(),
        profile: context.profile.as_str(),
        bus: context.bus().to_owned(),
        caches,
        quarantined: files.quarantined,
        keyring_problem,
    })
}

/// Whether `item` is the keyring item of the marker `name` in `profile`: in the Python
/// layout the item of that name; in the shared layouts the one item of the profile.
fn belongs(item: &Item, name: &str, profile: KeyringProfile) -> bool {
    item.profile == profile.as_str()
        && (profile != KeyringProfile::AzureIdentityPython
            || item.cache_name.as_deref() == Some(name))
}

fn read_dir(dir: &Path) -> Result<Files, Failure> {
    let mut files = Files {
        caches: Vec::new(),
        locks: BTreeSet::new(),
        quarantined: Vec::new(),
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(unreadable(dir, &e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| unreadable(dir, &e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // Temporary files of saves in progress, and our own doctor probe.
        if name.starts_with('.') {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) if meta.is_file() => meta,
            _ => continue,
        };
        // The lock's guard: part of the lock, never removed, holds nothing.
        if is_lock_guard(&name) {
            continue;
        }
        if let Some(cache) = cache_name_of_lock(&name) {
            files.locks.insert(cache.to_owned());
        } else if Quarantine::is_kept_copy(&name) {
            files.quarantined.push(entry.path());
        } else {
            files.caches.push((name, meta));
        }
    }
    files.caches.sort_by(|a, b| a.0.cmp(&b.0));
    files.quarantined.sort();
    Ok(files)
}

fn unreadable(dir: &Path, e: &io::Error) -> Failure {
    let code = if e.kind() == io::ErrorKind::PermissionDenied {
        Code::Permissions
    } else {
        Code::Failed
    };
    Failure::new(code, format!("could not read {}: {e}", dir.display()))
}

/// The state of the lock file of cache `name`.
pub fn lock_state(context: &Context, name: &str) -> Lock {
    let Ok(path) = context.lock_path(name) else {
        return Lock::Free;
    };
    match FileLock::new(path).inspect() {
        Ok(LockState::Held(holder)) => Lock::Held {
            pid: holder.pid,
            process: holder.pid.and_then(process_name),
        },
        Ok(LockState::Stale(holder, reason)) => Lock::Stale {
            pid: holder.pid,
            reason,
        },
        Ok(_) => Lock::Free,
        Err(e) => Lock::Unreadable {
            error: e.to_string(),
        },
    }
}

/// The command name of a running process, for telling people who holds a lock.
pub fn process_name(pid: u32) -> Option<String> {
    let name = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(unix)]
pub fn mode_of(meta: &fs::Metadata) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    Some(format!("{:04o}", meta.permissions().mode() & 0o7777))
}

#[cfg(not(unix))]
pub fn mode_of(_: &fs::Metadata) -> Option<String> {
    None
}

/// `list`.
pub fn run(context: &Context, json: bool) -> Result<Code, Failure> {
    let inventory = scan(context)?;
    if json {
        output::json(&inventory);
        return Ok(Code::Ok);
    }
    println!(
        "Token caches in {} (keyring profile {}, {}):",
        inventory.directory.display(),
        inventory.profile,
        inventory.bus
    );
    if inventory.caches.is_empty() {
        println!("  none");
    } else {
        let rows: Vec<Vec<String>> = inventory
            .caches
            .iter()
            .map(|cache| {
                vec![
                    cache.name.clone(),
                    stored_in(cache),
                    cache.size.map_or_else(|| "?".to_owned(), output::size),
                    cache.last_change.clone().unwrap_or_else(|| "?".to_owned()),
                    cache.lock.describe(),
                ]
            })
            .collect();
        println!(
            "{}",
            output::table(&["NAME", "STORED IN", "SIZE", "LAST CHANGE", "LOCK"], &rows)
        );
    }
    match &inventory.keyring_problem {
        None => println!("Secret Service: searched for the items of every profile."),
        Some(problem) => println!(
            "Secret Service: not searched: {} (run `identity-cache doctor`).",
            problem.message
        ),
    }
    for path in &inventory.quarantined {
        println!(
            "Copy of a corrupt cache kept aside: {} (it may hold tokens; delete it when done).",
            path.display()
        );
    }
    Ok(Code::Ok)
}

fn stored_in(cache: &Cache) -> String {
    match &cache.keyring_item {
        Some(item) if item.locked => format!("{} ({}, locked)", cache.stored_in, item.profile),
        Some(item) => format!("{} ({})", cache.stored_in, item.profile),
        None => cache.stored_in.to_owned(),
    }
}
