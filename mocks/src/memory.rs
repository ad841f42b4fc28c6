//! A correct plugin that keeps its blobs in process memory.
//!
//! It keeps the whole [`CachePersistence`] contract that can be kept inside one process,
//! so it serves as the "known good" plugin: for tests of code that stores through a plugin,
//! as the inner plugin of [`FaultyPersistence`](crate::FaultyPersistence) and
//! [`GatedPersistence`](crate::GatedPersistence), and as the base the conformance suite's
//! deliberately broken plugins (in the unpublished `conformance-selftest` crate) each break
//! one rule of.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Condvar, Mutex, OnceLock},
    time::{Duration, Instant},
};

use identity_cache_persistence::{
    CachePersistence, Capabilities, ChangeToken, Description, Error, ErrorKind, HeldLock,
    LockGuard, Result, validate_name,
};

use crate::sync::lock;

/// A set of named in-memory slots; handles made from one store share its slots.
///
/// This plays the part of "the storage" (the directory, the keyring): two
/// [`InMemoryPersistence`] handles made by [`slot`](InMemoryStore::slot) with the same name
/// on the same store (or on clones of it) see each other's writes and exclude each other
/// with [`lock`](CachePersistence::lock); different names, or different stores, are
/// isolated. Cloning the store is cheap and shares the slots.
///
/// ```
/// use identity_cache_mocks::InMemoryStore;
/// use identity_cache_persistence::CachePersistence;
///
/// let store = InMemoryStore::new();
/// let writer = store.slot("msal.cache");
/// let reader = store.slot("msal.cache");
/// let other = store.slot("other.cache");
///
/// writer.save(b"blob")?;
/// assert_eq!(reader.load()?.as_deref(), Some(&b"blob"[..]));
/// assert_eq!(other.load()?, None);
/// # Ok::<(), identity_cache_persistence::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct InMemoryStore {
    slots: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

impl InMemoryStore {
    /// An empty store: every slot is absent.
    pub fn new() -> Self {
        InMemoryStore::default()
    }

    /// The store shared by the whole process, for code that can only name a slot, not
    /// pass a store along (a factory that is a plain `fn`, a harness macro).
    ///
    /// Its slots live until the process exits, so tests sharing it should use names of
    /// their own (a test name, a random suffix) to stay isolated from each other.
    pub fn global() -> InMemoryStore {
        static GLOBAL: OnceLock<InMemoryStore> = OnceLock::new();
        GLOBAL.get_or_init(InMemoryStore::new).clone()
    }

    /// A handle on the slot called `name`, created empty on first use.
    ///
    /// Any string is a name here: there is no file system or keyring to restrict it, so
    /// names the reference plugin refuses (empty, `..`, `/`) are accepted. The handle has
    /// no size limit; see [`InMemoryPersistence::with_max_size`].
    pub fn slot(&self, name: &str) -> InMemoryPersistence {
        let slot = Arc::clone(
            lock(&self.slots)
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(Slot::new(name))),
        );
        InMemoryPersistence {
            slot,
            max_size: None,
        }
    }

    /// A handle on the slot called `name`, refusing the names the reference plugin
    /// refuses ([`validate_name`]) with [`ErrorKind::InvalidName`].
    ///
    /// For factories that must behave like a real plugin's constructor, which the
    /// conformance suite checks with bad names.
    ///
    /// ```
    /// use identity_cache_mocks::InMemoryStore;
    /// use identity_cache_persistence::ErrorKind;
    ///
    /// let store = InMemoryStore::new();
    /// assert!(store.open("msal.cache").is_ok());
    /// assert_eq!(store.open("../x").unwrap_err().kind(), ErrorKind::InvalidName);
    /// ```
    pub fn open(&self, name: &str) -> Result<InMemoryPersistence> {
        validate_name(name)?;
        Ok(self.slot(name))
    }

    /// Makes the storage of slot `name` refuse service until
    /// [`clear_fault`](InMemoryStore::clear_fault): `load`, `save`, `delete` and `version`
    /// on every handle of the slot fail with an error of `kind` and change nothing.
    /// `lock` still works: it is exclusion between handles, not storage.
    ///
    /// This is the in-memory counterpart of a real storage failure (a locked keyring, a
    /// full disk): it happens in the storage, below every handle, unlike
    /// [`FaultyPersistence`](crate::FaultyPersistence), which fails calls of one wrapper.
    ///
    /// ```
    /// use identity_cache_mocks::InMemoryStore;
    /// use identity_cache_persistence::{CachePersistence, ErrorKind};
    ///
    /// let store = InMemoryStore::new();
    /// let cache = store.slot("c");
    /// cache.save(b"old")?;
    /// store.inject_fault("c", ErrorKind::StorageFull);
    /// assert_eq!(cache.save(b"new").unwrap_err().kind(), ErrorKind::StorageFull);
    /// store.clear_fault("c");
    /// assert_eq!(cache.load()?.as_deref(), Some(&b"old"[..]));
    /// # Ok::<(), identity_cache_persistence::Error>(())
    /// ```
    pub fn inject_fault(&self, name: &str, kind: ErrorKind) {
        lock(&self.slot(name).slot.data).fault = Some(kind);
    }

    /// Ends a fault set by [`inject_fault`](InMemoryStore::inject_fault); the slot holds
    /// what it held before the fault.
    pub fn clear_fault(&self, name: &str) {
        lock(&self.slot(name).slot.data).fault = None;
    }

    /// Damages what slot `name` stores, as a torn keyring item or undecodable ciphertext
    /// would be: from now on `load` on every handle fails with
    /// [`ErrorKind::CorruptData`] and leaves the damaged data in place, `version` still
    /// reports something stored, and only a `save` (which replaces it) or a `delete`
    /// (which removes it, answering `true`) ends the damage. The change token moves, as
    /// for any change of what is stored.
    ///
    /// ```
    /// use identity_cache_mocks::InMemoryStore;
    /// use identity_cache_persistence::{CachePersistence, ErrorKind};
    ///
    /// let store = InMemoryStore::new();
    /// let cache = store.slot("c");
    /// cache.save(b"{}")?;
    /// store.corrupt("c");
    /// assert_eq!(cache.load().unwrap_err().kind(), ErrorKind::CorruptData);
    /// assert_eq!(cache.load().unwrap_err().kind(), ErrorKind::CorruptData, "left in place");
    /// cache.save(b"{}")?;
    /// assert_eq!(cache.load()?.as_deref(), Some(&b"{}"[..]));
    /// # Ok::<(), identity_cache_persistence::Error>(())
    /// ```
    pub fn corrupt(&self, name: &str) {
        let handle = self.slot(name);
        let mut stored = lock(&handle.slot.data);
        stored.blob.get_or_insert_with(Vec::new);
        stored.corrupt = true;
        stored.generation += 1;
    }

    /// The names of the slots handed out so far, sorted; absent slots included.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.slots).keys().cloned().collect();
        names.sort();
        names
    }
}

impl fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("slots", &self.names())
            .finish()
    }
}

/// A handle on one slot of an [`InMemoryStore`]; a correct [`CachePersistence`] that keeps
/// nothing outside this process.
///
/// How it keeps the contract:
///
/// - [`load`](CachePersistence::load): `None` until a save and after a delete; otherwise a
///   copy of exactly the bytes of the last save. An empty blob is stored as such, so it
///   loads as `Some(vec![])`, not `None`.
/// - [`save`](CachePersistence::save): replaces the whole blob under a mutex, so a
///   concurrent `load` on any thread sees the old or the new blob, never a mix. With a
///   [`max_size`](InMemoryPersistence::with_max_size), a larger blob fails with
///   [`ErrorKind::TooLarge`] and changes nothing.
/// - [`delete`](CachePersistence::delete): `true` when a blob was removed, `false` (and no
///   change at all) when the slot was already absent.
/// - [`version`](CachePersistence::version): a per-slot counter that moves on every save
///   and every delete that removed something, so same-size saves within one clock tick are
///   seen too. `None` while absent.
/// - [`lock`](CachePersistence::lock): one lock per slot, shared by every handle on that
///   slot, so it excludes other handles and other threads of this process. It waits at
///   most `wait` (woken as soon as the holder releases, no polling), then fails with
///   [`ErrorKind::LockTimeout`]. Not re-entrant. Released when the guard is dropped or
///   [released](LockGuard::release).
/// - A storage fault injected with [`InMemoryStore::inject_fault`] makes `load`, `save`,
///   `delete` and `version` fail with the injected kind, changing nothing; data damaged
///   with [`InMemoryStore::corrupt`] makes `load` fail with [`ErrorKind::CorruptData`]
///   and stays until a save or delete.
///
/// What it declares ([`describe`](CachePersistence::describe)): backend `"memory"`,
/// location `"memory:<name>"`, and
///
/// - `shared_across_processes: false`: another process has its own memory, so it cannot
///   see the blob; the multi-process checks do not apply.
/// - `exclusive_lock: true`: the lock excludes every holder that can reach the slot,
///   which here is every handle and thread of this process (see
///   [`Capabilities::exclusive_lock`]). Code under test that locks needs a lock that
///   works, so this plugin provides one.
/// - `change_detection: true`.
/// - `encrypts_at_rest: false`. Nothing reaches the disk, so the check behind this flag
///   ("no plaintext under the plugin's directory") would pass, but the flag promises more
///   than that: that the secret is protected at rest. Here it sits in plaintext in process
///   memory, which swap, core dumps and debuggers can read. Callers that demand encryption
///   (as the Azure SDKs do unless `unsafe_allow_unencrypted_storage` is set) must not be
///   told that this plugin provides it.
/// - `max_size`: as set by [`with_max_size`](InMemoryPersistence::with_max_size).
///
/// `Debug` shows the slot name, the stored length and the counter, never the bytes.
/// Cloning a handle gives another handle on the same slot with the same size limit.
///
/// ```
/// use identity_cache_mocks::InMemoryPersistence;
/// use identity_cache_persistence::{CachePersistence, ErrorKind};
/// use std::time::Duration;
///
/// let cache = InMemoryPersistence::new().with_max_size(4);
/// assert_eq!(cache.load()?, None);
/// cache.save(b"")?;
/// assert_eq!(cache.load()?, Some(vec![]), "empty is not absent");
///
/// let before = cache.version()?;
/// cache.save(b"abcd")?;
/// assert_ne!(cache.version()?, before);
/// assert_eq!(cache.save(b"abcde").unwrap_err().kind(), ErrorKind::TooLarge);
///
/// let guard = cache.lock(Duration::from_secs(1))?;
/// let second = cache.clone().lock(Duration::from_millis(10));
/// assert_eq!(second.unwrap_err().kind(), ErrorKind::LockTimeout);
/// drop(guard);
/// assert!(cache.delete()?);
/// assert!(!cache.delete()?);
/// # Ok::<(), identity_cache_persistence::Error>(())
/// ```
#[derive(Clone)]
pub struct InMemoryPersistence {
    slot: Arc<Slot>,
    max_size: Option<usize>,
}

impl InMemoryPersistence {
    /// A handle on the slot `"memory"` of a new, private [`InMemoryStore`].
    ///
    /// Clone the handle for more handles on the same slot; use [`InMemoryStore::slot`] for
    /// several named slots.
    pub fn new() -> Self {
        InMemoryStore::new().slot("memory")
    }

    /// A handle on the slot `name` of the process-wide [`InMemoryStore::global`]: every
    /// handle made by `shared` with the same name, anywhere in the process, shares the slot.
    ///
    /// ```
    /// use identity_cache_mocks::InMemoryPersistence;
    /// use identity_cache_persistence::CachePersistence;
    ///
    /// fn factory(name: &str) -> InMemoryPersistence {
    ///     InMemoryPersistence::shared(name)
    /// }
    /// factory("doc-shared").save(b"seen by all")?;
    /// assert_eq!(factory("doc-shared").load()?.as_deref(), Some(&b"seen by all"[..]));
    /// # Ok::<(), identity_cache_persistence::Error>(())
    /// ```
    pub fn shared(name: &str) -> Self {
        InMemoryStore::global().slot(name)
    }

    /// Limits saved blobs to `max` bytes: a larger [`save`](CachePersistence::save) fails
    /// with [`ErrorKind::TooLarge`] and changes nothing. The limit belongs to this handle
    /// (and its clones) and is declared in its [`Capabilities::max_size`].
    pub fn with_max_size(mut self, max: usize) -> Self {
        self.max_size = Some(max);
        self
    }

    /// The slot's name.
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    /// The error of a fault injected into the slot's storage, if one is in force.
    fn refuse_if_faulty(&self, stored: &Stored, operation: &str) -> Result<()> {
        match stored.fault {
            None => Ok(()),
            Some(kind) => Err(Error::new(
                kind,
                format!(
                    "memory:{} refused {operation}: injected storage fault {kind}",
                    self.slot.name
                ),
            )),
        }
    }
}

impl Default for InMemoryPersistence {
    fn default() -> Self {
        InMemoryPersistence::new()
    }
}

impl CachePersistence for InMemoryPersistence {
    fn describe(&self) -> Description {
        Description::new(
            "memory",
            format!("memory:{}", self.slot.name),
            Capabilities::full()
                .encrypts_at_rest(false)
                .exclusive_lock(true)
                .shared_across_processes(false)
                .change_detection(true)
                .max_size(self.max_size),
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        let stored = lock(&self.slot.data);
        self.refuse_if_faulty(&stored, "load")?;
        if stored.corrupt {
            return Err(Error::new(
                ErrorKind::CorruptData,
                format!("memory:{} holds damaged data", self.slot.name),
            ));
        }
        Ok(stored.blob.clone())
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        if let Some(max) = self.max_size
            && data.len() > max
        {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "a blob of {} bytes is larger than the {max} bytes memory:{} accepts",
                    data.len(),
                    self.slot.name
                ),
            ));
        }
        // Copy before taking the mutex: the slot is replaced in one assignment, so no
        // reader can ever see a partly written blob.
        let blob = data.to_vec();
        let mut stored = lock(&self.slot.data);
        self.refuse_if_faulty(&stored, "save")?;
        stored.blob = Some(blob);
        stored.corrupt = false;
        stored.generation += 1;
        Ok(())
    }

    fn delete(&self) -> Result<bool> {
        let mut stored = lock(&self.slot.data);
        self.refuse_if_faulty(&stored, "delete")?;
        stored.corrupt = false;
        if stored.blob.take().is_none() {
            return Ok(false);
        }
        stored.generation += 1;
        Ok(true)
    }

    fn version(&self) -> Result<Option<ChangeToken>> {
        let stored = lock(&self.slot.data);
        self.refuse_if_faulty(&stored, "version")?;
        Ok(stored
            .blob
            .as_ref()
            .map(|_| ChangeToken::new(stored.generation.to_string())))
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        // `None` when `wait` is too long to represent: wait without a deadline.
        let deadline = Instant::now().checked_add(wait);
        let mut held = lock(&self.slot.held);
        while *held {
            held = match deadline {
                None => self
                    .slot
                    .released
                    .wait(held)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::new(
                            ErrorKind::LockTimeout,
                            format!(
                                "the lock of memory:{} was still held after {wait:?}",
                                self.slot.name
                            ),
                        ));
                    }
                    // Poisoning: see `crate::sync::lock`; the flag is a plain bool.
                    self.slot
                        .released
                        .wait_timeout(held, deadline - now)
                        .map(|(held, _)| held)
                        .unwrap_or_else(|poisoned| poisoned.into_inner().0)
                }
            };
        }
        *held = true;
        Ok(LockGuard::new(SlotLock {
            slot: Arc::clone(&self.slot),
        }))
    }
}

impl fmt::Debug for InMemoryPersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (stored_len, generation, fault, corrupt) = {
            let stored = lock(&self.slot.data);
            (
                stored.blob.as_ref().map(Vec::len),
                stored.generation,
                stored.fault,
                stored.corrupt,
            )
        };
        f.debug_struct("InMemoryPersistence")
            .field("name", &self.slot.name)
            .field("stored_len", &stored_len)
            .field("generation", &generation)
            .field("max_size", &self.max_size)
            .field("fault", &fault)
            .field("corrupt", &corrupt)
            .field("locked", &*lock(&self.slot.held))
            .finish()
    }
}

/// One named slot: the blob with its change counter, and the slot's lock.
struct Slot {
    name: String,
    data: Mutex<Stored>,
    /// Whether a [`LockGuard`] for this slot is alive.
    held: Mutex<bool>,
    /// Signalled when `held` becomes false, so waiters wake at once instead of polling.
    released: Condvar,
}

impl Slot {
    fn new(name: &str) -> Self {
        Slot {
            name: name.to_owned(),
            data: Mutex::new(Stored::default()),
            held: Mutex::new(false),
            released: Condvar::new(),
        }
    }
}

#[derive(Default)]
struct Stored {
    blob: Option<Vec<u8>>,
    /// Moves on every change and never goes back, so a token is never reused within the
    /// slot's life (slots live as long as their store).
    generation: u64,
    /// A storage fault in force (see `InMemoryStore::inject_fault`).
    fault: Option<ErrorKind>,
    /// `blob` is damaged and cannot be read back (see `InMemoryStore::corrupt`).
    corrupt: bool,
}

/// The held lock of one slot; releasing clears the flag and wakes the waiters.
struct SlotLock {
    slot: Arc<Slot>,
}

impl HeldLock for SlotLock {
    fn release(self: Box<Self>) -> Result<()> {
        *lock(&self.slot.held) = false;
        // Every waiter re-checks the flag under the mutex before it looks at its deadline,
        // so waking all of them is safe: exactly one takes the lock, the others wait again.
        self.slot.released.notify_all();
        Ok(())
    }
}

impl fmt::Debug for SlotLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotLock")
            .field("name", &self.slot.name)
            .finish()
    }
}
