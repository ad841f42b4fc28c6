//! A small in-memory plugin for the suite's own tests: correct, or broken in one chosen
//! way ([`Break`]), so tests can show that the case named for a rule catches it.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Condvar, Mutex, atomic::AtomicU64, atomic::Ordering},
    time::{Duration, Instant},
};

use conformance::{Fault, Namespace, PluginFactory};
use identity_cache_persistence::{
    CachePersistence, Capabilities, ChangeToken, Description, Error, ErrorKind, HeldLock,
    LockGuard, Result, validate_name,
};

/// One way to break the in-memory plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    None,
    /// lock() always succeeds at once.
    NoOpLock,
    /// lock() on a held lock fails with LockTimeout at once instead of waiting.
    TimeoutAtOnce,
    /// The change token is the blob's length.
    TokenIsLength,
    /// Debug prints the stored blob.
    DebugLeaks,
    /// Debug prints the stored blob in base64.
    DebugLeaksBase64,
    /// Each handle caches the first blob it loaded.
    StaleLoad,
    /// Blobs over 100 KiB lose their last byte.
    DropsTail,
    /// delete() always answers true.
    DeleteAlwaysTrue,
    /// save() logs the blob.
    LogsBlob,
    /// save() also writes a copy of the blob under the namespace directory with the
    /// default mode (0644 under umask 022).
    WorldReadableFile,
    /// save() creates a subdirectory with the default mode (0755 under umask 022).
    OpenDirectory,
    /// Declares encryption at rest but writes a plaintext copy beside it (mode 0600).
    PlaintextBeside,
    /// The lock-timeout error quotes the stored blob.
    ErrorLeaks,
    /// save() stores the first half, lets others in, then the whole blob.
    TornSave,
    /// version() returns a new token on every call.
    TokenMovesOnRead,
    /// Releasing the guard does not free the lock.
    LockNeverReleased,
    /// The handle holding the lock can take it again.
    Reentrant,
    /// load() answers None while the storage is unavailable.
    UnavailableIsNone,
    /// save() answers Ok under a fault, storing nothing.
    SwallowsErrors,
    /// save() under a fault empties the stored blob before failing.
    LosesBlobOnFault,
    /// load() of corrupt data answers Ok(None) and drops the data.
    CorruptAsEmpty,
}

#[derive(Default)]
struct Slot {
    data: Option<Vec<u8>>,
    token: u64,
    locked: bool,
    holder: usize,
    fault: Option<Fault>,
    corrupt: bool,
}

type Store = Arc<(Mutex<HashMap<String, Slot>>, Condvar)>;

static TOKENS: AtomicU64 = AtomicU64::new(1);

struct Memory {
    dir: std::path::PathBuf,
    name: String,
    store: Store,
    broken: Break,
    cache: Mutex<Option<Vec<u8>>>,
}

impl fmt::Debug for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Memory");
        d.field("name", &self.name);
        if matches!(self.broken, Break::DebugLeaks | Break::DebugLeaksBase64) {
            let map = self.store.0.lock().expect("store");
            let data = map
                .get(&self.name)
                .and_then(|s| s.data.clone())
                .unwrap_or_default();
            if self.broken == Break::DebugLeaks {
                d.field("data", &String::from_utf8_lossy(&data));
            } else {
                use base64::Engine as _;
                d.field(
                    "data",
                    &base64::engine::general_purpose::STANDARD.encode(&data),
                );
            }
        }
        d.finish()
    }
}

struct Held {
    name: String,
    store: Store,
    broken: Break,
}

impl HeldLock for Held {
    fn release(self: Box<Self>) -> Result<()> {
        if self.broken == Break::LockNeverReleased {
            return Ok(());
        }
        let (map, cv) = &*self.store;
        map.lock()
            .expect("store")
            .entry(self.name.clone())
            .or_default()
            .locked = false;
        cv.notify_all();
        Ok(())
    }
}

impl CachePersistence for Memory {
    fn describe(&self) -> Description {
        Description::new(
            "memory",
            self.name.clone(),
            Capabilities::full_plaintext()
                .shared_across_processes(false)
                .encrypts_at_rest(self.broken == Break::PlaintextBeside),
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        {
            let mut map = self.store.0.lock().expect("store");
            let slot = map.entry(self.name.clone()).or_default();
            if slot.fault == Some(Fault::StorageUnavailable) {
                if self.broken == Break::UnavailableIsNone {
                    return Ok(None);
                }
                return Err(Error::new(
                    ErrorKind::StorageUnavailable,
                    "storage unavailable",
                ));
            }
            if slot.corrupt {
                if self.broken == Break::CorruptAsEmpty {
                    slot.corrupt = false;
                    slot.data = None;
                    return Ok(None);
                }
                return Err(Error::new(ErrorKind::CorruptData, "corrupt data"));
            }
        }
        if self.broken == Break::StaleLoad
            && let Some(cached) = self.cache.lock().expect("cache").clone()
        {
            return Ok(Some(cached));
        }
        let data = self
            .store
            .0
            .lock()
            .expect("store")
            .get(&self.name)
            .and_then(|s| s.data.clone());
        if self.broken == Break::StaleLoad {
            *self.cache.lock().expect("cache") = data.clone();
        }
        Ok(data)
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        {
            let mut map = self.store.0.lock().expect("store");
            let slot = map.entry(self.name.clone()).or_default();
            if let Some(fault) = slot.fault {
                match self.broken {
                    Break::SwallowsErrors => return Ok(()),
                    Break::LosesBlobOnFault => slot.data = Some(Vec::new()),
                    _ => {}
                }
                let kind = match fault {
                    Fault::StorageUnavailable => ErrorKind::StorageUnavailable,
                    Fault::AccessDenied => ErrorKind::AccessDenied,
                    _ => ErrorKind::StorageFull,
                };
                return Err(Error::new(kind, "save refused by a fault"));
            }
            slot.corrupt = false;
        }
        match self.broken {
            Break::WorldReadableFile => {
                std::fs::write(self.dir.join("copy"), data)
                    .map_err(|e| Error::io("write", &self.dir, e))?;
            }
            Break::OpenDirectory => {
                let _ = std::fs::create_dir_all(self.dir.join("sub"));
            }
            Break::PlaintextBeside => {
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create(true).truncate(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options
                    .open(self.dir.join("plain"))
                    .map_err(|e| Error::io("open", &self.dir, e))?;
                std::io::Write::write_all(&mut file, data)
                    .map_err(|e| Error::io("write", &self.dir, e))?;
            }
            _ => {}
        }
        if self.broken == Break::LogsBlob {
            tracing::debug!(blob = %String::from_utf8_lossy(data), "saving");
        }
        let mut data = data.to_vec();
        if self.broken == Break::DropsTail && data.len() > 100 * 1024 {
            data.pop();
        }
        if self.broken == Break::TornSave {
            let half = data[..data.len() / 2].to_vec();
            self.store
                .0
                .lock()
                .expect("store")
                .entry(self.name.clone())
                .or_default()
                .data = Some(half);
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut map = self.store.0.lock().expect("store");
        let slot = map.entry(self.name.clone()).or_default();
        slot.token = if self.broken == Break::TokenIsLength {
            data.len() as u64
        } else {
            TOKENS.fetch_add(1, Ordering::SeqCst)
        };
        slot.data = Some(data);
        Ok(())
    }

    fn delete(&self) -> Result<bool> {
        let mut map = self.store.0.lock().expect("store");
        let had = map
            .get_mut(&self.name)
            .and_then(|s| s.data.take())
            .is_some();
        Ok(had || self.broken == Break::DeleteAlwaysTrue)
    }

    fn version(&self) -> Result<Option<ChangeToken>> {
        let map = self.store.0.lock().expect("store");
        Ok(map.get(&self.name).filter(|s| s.data.is_some()).map(|s| {
            if self.broken == Break::TokenMovesOnRead {
                ChangeToken::new(TOKENS.fetch_add(1, Ordering::SeqCst).to_string())
            } else {
                ChangeToken::new(s.token.to_string())
            }
        }))
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        let held = Held {
            name: self.name.clone(),
            store: Arc::clone(&self.store),
            broken: self.broken,
        };
        let me = self as *const Memory as usize;
        if self.broken == Break::NoOpLock {
            return Ok(LockGuard::new(held));
        }
        let (map, cv) = &*self.store;
        let deadline = Instant::now() + wait;
        let mut guard = map.lock().expect("store");
        loop {
            let slot = guard.entry(self.name.clone()).or_default();
            if !slot.locked || (self.broken == Break::Reentrant && slot.holder == me) {
                slot.locked = true;
                slot.holder = me;
                return Ok(LockGuard::new(held));
            }
            let now = Instant::now();
            if now >= deadline || self.broken == Break::TimeoutAtOnce {
                let mut message = "lock timed out".to_string();
                if self.broken == Break::ErrorLeaks {
                    let data = slot.data.clone().unwrap_or_default();
                    message.push_str(&format!(
                        " while holding {}",
                        String::from_utf8_lossy(&data)
                    ));
                }
                return Err(Error::new(ErrorKind::LockTimeout, message));
            }
            guard = cv.wait_timeout(guard, deadline - now).expect("store").0;
        }
    }
}

pub struct MemoryFactory {
    store: Store,
    broken: Break,
}

impl MemoryFactory {
    pub fn new(broken: Break) -> Self {
        MemoryFactory {
            store: Arc::default(),
            broken,
        }
    }
}

impl PluginFactory for MemoryFactory {
    fn label(&self) -> String {
        format!("memory ({:?})", self.broken)
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        validate_name(&ns.name)?;
        Ok(Box::new(Memory {
            name: ns.name.clone(),
            dir: ns.dir.clone(),
            store: Arc::clone(&self.store),
            broken: self.broken,
            cache: Mutex::new(None),
        }))
    }

    fn corrupt_stored_data(&self, ns: &Namespace) -> Result<()> {
        self.slot(ns, |slot| slot.corrupt = true);
        Ok(())
    }

    fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.slot(ns, |slot| slot.fault = Some(fault));
        Ok(())
    }

    fn clear_fault(&self, ns: &Namespace, _: Fault) -> Result<()> {
        self.slot(ns, |slot| slot.fault = None);
        Ok(())
    }
}

impl MemoryFactory {
    /// Simulated faults: enough to show the cases catch wrong answers; the file factory
    /// provokes real ones.
    fn slot(&self, ns: &Namespace, change: impl FnOnce(&mut Slot)) {
        change(
            self.store
                .0
                .lock()
                .expect("store")
                .entry(ns.name.clone())
                .or_default(),
        );
    }
}
