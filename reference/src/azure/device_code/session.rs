//! [`Session`]: the token cache, locked and loaded, for the length of one token request.
//!
//! The lock is cross-process (the persistence's) and the storage calls block, so a
//! worker thread takes the lock, loads and decodes the cache, hands the document over and
//! waits: for the bytes to save, or for the session to be dropped, which releases the lock
//! unsaved. The async side can meanwhile `await` a refresh-token request *while the lock
//! is held*, so N processes needing a refresh send one request, not N.

use std::{
    fmt,
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use futures_channel::oneshot;

use crate::{
    CachePersistence, CachePlugin,
    azure::blocking,
    token_cache::{Quarantine, TokenCacheDocument, decode_or_recover},
};

/// A lock wait longer than this is logged (at info level): another process held the
/// cache, typically while it refreshed a token.
const SLOW_LOCK_WAIT: Duration = Duration::from_millis(100);

/// Where the credential's cache lives.
pub(super) enum Store {
    /// The persistent, cross-process cache.
    Persistent {
        plugin: CachePlugin<Box<dyn CachePersistence>>,
        quarantine: Quarantine,
    },
    /// `tokenCachePersistenceOptions` not enabled: this process's memory, as MSAL's
    /// in-memory cache; the mutex serialises the credential's own requests the same way.
    Memory(Mutex<Option<Vec<u8>>>),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Store::Persistent { plugin, .. } => f.debug_tuple("Persistent").field(plugin).finish(),
            // The bytes are the cache: tokens and refresh tokens.
            Store::Memory(_) => f.write_str("Memory"),
        }
    }
}

/// The cache, exclusively held until dropped or [`save`](Self::save)d.
#[derive(Debug)]
pub(super) struct Session {
    pub document: TokenCacheDocument,
    /// False when the cache held corrupt bytes that could not be kept aside: saving over
    /// them would lose them, so the session is read-only.
    writable: bool,
    save: mpsc::Sender<Vec<u8>>,
    saved: oneshot::Receiver<()>,
}

struct Opened {
    document: TokenCacheDocument,
    writable: bool,
}

impl Session {
    /// Locks and loads the cache. `None` when it cannot be used (the failure is logged):
    /// a token request then goes on without it.
    pub(super) async fn open(store: &Arc<Store>) -> Option<Session> {
        let (opened_tx, opened_rx) = oneshot::channel();
        let (save_tx, save_rx) = mpsc::channel();
        let (saved_tx, saved_rx) = oneshot::channel();
        let worker = {
            let store = Arc::clone(store);
            move || store.serve(opened_tx, save_rx, saved_tx)
        };
        if let Err(error) = blocking::spawn(worker) {
            tracing::warn!(%error, "no thread for the token cache; going on without it");
            return None;
        }
        let opened = opened_rx.await.ok()?;
        Some(Session {
            document: opened.document,
            writable: opened.writable,
            save: save_tx,
            saved: saved_rx,
        })
    }

    /// Saves the document and releases the lock; waits for the save, so the next request,
    /// here or in another process, sees it. A failure is logged, not returned: the tokens
    /// are still good, only not shared.
    pub(super) async fn save(self) {
        if !self.writable {
            tracing::warn!(
                "not saving the token cache: its corrupt content could not be kept aside"
            );
            return;
        }
        if self.save.send(self.document.to_bytes()).is_ok() {
            let _ = self.saved.await;
        }
    }
}

impl Store {
    /// The worker thread of one session.
    fn serve(
        &self,
        opened: oneshot::Sender<Opened>,
        save: mpsc::Receiver<Vec<u8>>,
        saved: oneshot::Sender<()>,
    ) {
        let started = Instant::now();
        match self {
            Store::Persistent { plugin, quarantine } => {
                let mut access = match plugin.begin() {
                    Ok(access) => access,
                    Err(error) => {
                        tracing::warn!(%error, "token cache unusable; going on without it");
                        return;
                    }
                };
                log_wait(started);
                let decoded = decode_or_recover(access.data(), quarantine);
                // A corrupt blob kept aside is replaced even by a session that saves
                // nothing, so the next session does not keep it aside a second time.
                let replacement = (decoded.corrupt.is_some() && decoded.kept_at.is_some())
                    .then(|| decoded.document.to_bytes());
                let session = Opened {
                    document: decoded.document,
                    writable: decoded.writable,
                };
                if opened.send(session).is_err() {
                    return;
                }
                // Err: the session was dropped unsaved.
                let (bytes, reply) = match (save.recv(), replacement) {
                    (Ok(bytes), _) => (bytes, Some(saved)),
                    (Err(_), Some(empty)) => (empty, None),
                    (Err(_), None) => return,
                };
                let len = bytes.len();
                access.set_data(bytes);
                match access.commit() {
                    Ok(()) => tracing::debug!(len, "token cache saved"),
                    Err(error) => tracing::warn!(
                        %error,
                        "saving the token cache failed; the tokens are returned but not shared"
                    ),
                }
                if let Some(saved) = reply {
                    let _ = saved.send(());
                }
            }
            Store::Memory(slot) => {
                let mut data = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                log_wait(started);
                let decoded = decode_or_recover(data.as_deref(), &Quarantine::nowhere());
                let session = Opened {
                    document: decoded.document,
                    writable: true,
                };
                if opened.send(session).is_err() {
                    return;
                }
                if let Ok(bytes) = save.recv() {
                    *data = Some(bytes);
                    let _ = saved.send(());
                }
            }
        }
    }
}

fn log_wait(started: Instant) {
    let waited = started.elapsed();
    if waited > SLOW_LOCK_WAIT {
        tracing::info!(
            waited_ms = waited.as_millis() as u64,
            "waited for the token cache lock held by another process or thread"
        );
    }
}
