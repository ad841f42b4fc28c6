//! Hangs of plugin processes, noticed on the handles a case uses.
//!
//! A request to a plugin process that gets no answer within the client's timeout fails
//! with an error caused by [`NoAnswer`]. The case waiting on it would report it under its
//! own rule (an error message, a lock, a model step), which names the wrong thing: the
//! handles a [`Ctx`](crate::Ctx) gives out are [`Watched`], and the runner reports a case
//! during which a plugin did not answer under [`HANG_RULE`](crate::failure::HANG_RULE).

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use identity_cache_persistence::{CachePersistence, ChangeToken, Description, LockGuard, Result};

use crate::protocol::NoAnswer;

/// The first hang seen by the handles of one case: the error's message.
#[derive(Debug, Default, Clone)]
pub(crate) struct HangLog(Arc<Mutex<Option<String>>>);

impl HangLog {
    /// The first hang recorded, if any.
    pub(crate) fn first(&self) -> Option<String> {
        self.slot().clone()
    }

    fn note<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(err) = &result
            && NoAnswer::caused(err)
        {
            self.slot().get_or_insert_with(|| err.to_string());
        }
        result
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A handle whose hangs go to a [`HangLog`]; otherwise the plugin itself.
pub(crate) struct Watched {
    pub(crate) inner: Box<dyn CachePersistence>,
    pub(crate) log: HangLog,
}

impl fmt::Debug for Watched {
    /// The plugin's own `Debug`: `security::blob_not_in_debug` judges it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.inner, f)
    }
}

impl CachePersistence for Watched {
    fn describe(&self) -> Description {
        self.inner.describe()
    }
    fn load(&self) -> Result<Option<Vec<u8>>> {
        self.log.note(self.inner.load())
    }
    fn save(&self, data: &[u8]) -> Result<()> {
        self.log.note(self.inner.save(data))
    }
    fn delete(&self) -> Result<bool> {
        self.log.note(self.inner.delete())
    }
    fn version(&self) -> Result<Option<ChangeToken>> {
        self.log.note(self.inner.version())
    }
    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        self.log.note(self.inner.lock(wait))
    }
}
