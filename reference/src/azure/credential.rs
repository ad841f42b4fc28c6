//! [`PersistentTokenCredential`]: serves tokens from the persistent cache, across
//! processes.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use azure_core::{
    credentials::{AccessToken, TokenCredential, TokenRequestOptions},
    time::OffsetDateTime,
};

use super::{blocking, identity::CacheIdentity};
use crate::{
    CacheAccess, CachePersistence, CachePlugin, DetachedAccess, ErrorKind,
    TokenCachePersistenceOptions, persistence_for,
    token_cache::{
        AccessTokenEntry, AccessTokenQuery, AppMetadataEntry, Quarantine, Secret,
        TokenCacheDocument, decode_or_recover,
    },
};

/// A cached token is served only while it is valid for at least this long; closer to its
/// expiry the inner credential is asked for a new one. Five minutes, as the Azure SDKs'
/// token refresh offset, so a token handed out is never about to expire in the caller's
/// hands.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A lock wait longer than this is logged (at info level): another process held the
/// cache, typically while it asked for a token.
const SLOW_LOCK_WAIT: Duration = Duration::from_millis(100);

/// A [`TokenCredential`] that keeps the tokens of an inner credential in the persistent,
/// cross-process token cache, as `tokenCachePersistenceOptions` do in the JS and Python
/// Azure Identity libraries.
///
/// For each [`get_token`](TokenCredential::get_token):
///
/// 1. Takes the cache's cross-process lock and reloads the cache if another process (or
///    an MSAL library) changed it.
/// 2. A cached access token for these scopes, this identity and tenant that is valid for
///    at least the refresh margin ([`REFRESH_MARGIN`] by default) is returned: a hit, the
///    inner credential is not called.
/// 3. Otherwise the inner credential is asked *while the lock is held*, the new token is
///    written in the MSAL unified schema, the cache saved and the lock released. Other
///    processes wanting a token meanwhile wait on the lock and then find the new token, so
///    N processes needing a refresh cause one token request, not N. The lock wait is
///    bounded ([`CachePlugin::DEFAULT_LOCK_WAIT`]); a waiter that runs out asks its inner
///    credential itself.
///
/// The cache never makes a token request fail: when it cannot be locked, read or saved,
/// the failure is logged at warning level and the inner credential's answer is returned.
/// A corrupt cache is kept aside (see
/// [`decode_or_recover`](crate::token_cache::decode_or_recover)) and replaced; so is a
/// stored file that the persistence cannot read back (`CorruptData`, e.g. an encrypted
/// file that was tampered with), see [`Quarantine::set_aside_stored_file`].
///
/// The lock and the storage calls block, so they run on threads of their own, never on
/// the async executor: the wrapper works on any runtime.
///
/// With `enabled: false` in the options it is a pass-through to the inner credential.
pub struct PersistentTokenCredential {
    inner: Arc<dyn TokenCredential>,
    cache: Option<Arc<Shared>>,
}

/// What the worker threads share.
struct Shared {
    plugin: CachePlugin<Box<dyn CachePersistence>>,
    identity: CacheIdentity,
    environment: String,
    quarantine: Quarantine,
    refresh_margin: Duration,
    /// The document last parsed, with the plugin's generation of the blob it came from,
    /// so that an unchanged cache is not parsed again.
    parsed: Mutex<Option<(u64, TokenCacheDocument)>>,
}

impl PersistentTokenCredential {
    /// Wraps `inner`, with the persistence [`persistence_for`] picks for `options`.
    ///
    /// - `enabled: false`: a pass-through.
    /// - No usable storage (e.g. no Secret Service and no
    ///   `unsafe_allow_unencrypted_storage`), an invalid name: `Err`, of azure_core kind
    ///   `Credential`, with this crate's [`Error`](crate::Error) as its source.
    ///
    /// Corrupt caches are kept aside beside the cache path.
    pub fn new(
        inner: Arc<dyn TokenCredential>,
        identity: CacheIdentity,
        options: &TokenCachePersistenceOptions,
    ) -> azure_core::Result<Self> {
        let persistence = persistence_for(options).map_err(to_azure_error)?;
        let Some(persistence) = persistence else {
            return Ok(Self::pass_through(inner));
        };
        let quarantine = Quarantine::beside(options.cache_path().map_err(to_azure_error)?);
        Ok(Self::with_persistence(
            inner,
            identity,
            persistence,
            quarantine,
        ))
    }

    /// Wraps `inner` with an explicit persistence (tests, custom storage); corrupt caches
    /// are kept by `quarantine`.
    pub fn with_persistence(
        inner: Arc<dyn TokenCredential>,
        identity: CacheIdentity,
        persistence: Box<dyn CachePersistence>,
        quarantine: Quarantine,
    ) -> Self {
        PersistentTokenCredential {
            inner,
            cache: Some(Arc::new(Shared {
                plugin: CachePlugin::new(persistence),
                environment: identity.environment(),
                identity,
                quarantine,
                refresh_margin: REFRESH_MARGIN,
                parsed: Mutex::new(None),
            })),
        }
    }

    /// A wrapper that only forwards to `inner`.
    pub fn pass_through(inner: Arc<dyn TokenCredential>) -> Self {
        PersistentTokenCredential { inner, cache: None }
    }

    /// Sets the refresh margin (default [`REFRESH_MARGIN`]). Call before the first use.
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        if let Some(shared) = self.cache.as_mut().and_then(Arc::get_mut) {
            shared.refresh_margin = margin;
        }
        self
    }

    /// Whether tokens are persisted (false for a pass-through).
    pub fn is_persistent(&self) -> bool {
        self.cache.is_some()
    }
}

impl fmt::Debug for PersistentTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("PersistentTokenCredential");
        s.field("inner", &self.inner);
        if let Some(shared) = &self.cache {
            s.field("identity", &shared.identity)
                .field("persistence", shared.plugin.persistence())
                .field("refresh_margin", &shared.refresh_margin);
        }
        s.finish()
    }
}

/// What the cache holds for a request.
enum Lookup {
    /// A valid token; the lock is already released.
    Hit(AccessToken),
    /// None: the lock is held, with the document to add the new token to.
    Miss(Miss),
    /// The cache cannot be used for this request; ask the inner credential.
    Unusable,
}

/// A miss, holding the cache lock until the new token is committed or the request ends.
struct Miss {
    access: DetachedAccess,
    document: TokenCacheDocument,
    /// Saving over the stored blob loses nothing (a corrupt one was kept aside).
    writable: bool,
}

#[async_trait::async_trait]
impl TokenCredential for PersistentTokenCredential {
    /// Locks the cache and looks the token up; on a miss asks the inner credential while
    /// the lock is held, then saves the new token and releases the lock. The lock and the
    /// storage calls run on threads of their own, never on the executor.
    ///
    /// If this future is dropped while the inner credential is asked, the lock is
    /// released as it is dropped, and nothing is saved.
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let Some(shared) = &self.cache else {
            return self.inner.get_token(scopes, options).await;
        };
        if scopes.is_empty() {
            return self.inner.get_token(scopes, options).await;
        }
        let owned: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let lookup = blocking::run({
            let shared = Arc::clone(shared);
            move || shared.lookup(&owned)
        })
        .await;
        let miss = match lookup {
            Ok(Lookup::Hit(token)) => return Ok(token),
            Ok(Lookup::Miss(miss)) => miss,
            Ok(Lookup::Unusable) => return self.inner.get_token(scopes, options).await,
            Err(error) => {
                tracing::warn!(%error, "no thread for the token cache; asking the credential");
                return self.inner.get_token(scopes, options).await;
            }
        };
        let token = match self.inner.get_token(scopes, options).await {
            Ok(token) => token,
            Err(error) => {
                tracing::debug!("no token to cache (the request failed); releasing the lock");
                let _ = blocking::run(move || drop(miss)).await;
                return Err(error);
            }
        };
        let entry = shared.entry_for(scopes, &token);
        let saver = Arc::clone(shared);
        // Awaited, so that the next request, here or elsewhere, finds the token.
        if let Err(error) = blocking::run(move || saver.commit(miss, &entry)).await {
            tracing::warn!(%error, "the new token was not cached");
        }
        Ok(token)
    }
}

impl Shared {
    /// Takes the cache lock and looks up a token for `scopes`. On a hit the lock is
    /// released before returning; on a miss it stays held in the answer.
    fn lookup(&self, scopes: &[String]) -> Lookup {
        let scope_list = scopes.join(" ");
        let started = Instant::now();
        let access = match self.begin() {
            Ok(access) => access,
            Err(error) => {
                tracing::warn!(%error, scopes = %scope_list, "token cache unusable; asking the credential");
                return Lookup::Unusable;
            }
        };
        let waited = started.elapsed();
        if waited > SLOW_LOCK_WAIT {
            tracing::info!(
                waited_ms = waited.as_millis() as u64,
                "waited for the token cache lock held by another process or thread"
            );
        }
        let (document, writable) = self.document(access.data(), access.generation());
        let now = unix_now();
        let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let query = AccessTokenQuery::app_only(
            &self.environment,
            &self.identity.client_id,
            &self.identity.tenant_id,
            &scope_refs,
        );
        let valid_after = now.saturating_add(self.refresh_margin.as_secs());
        let hit = document
            .find_access_token(&query, valid_after)
            .filter(|entry| entry.refresh_on.is_none_or(|at| at > now))
            .and_then(|entry| {
                let expires_on =
                    OffsetDateTime::from_unix_timestamp(entry.expires_on as i64).ok()?;
                Some((
                    entry.expires_on,
                    AccessToken::new(entry.secret.expose().to_owned(), expires_on),
                ))
            });
        if let Some((expires_on, token)) = hit {
            // Nothing changed: commit only releases the lock.
            if let Err(error) = access.commit() {
                tracing::warn!(%error, "releasing the token cache lock failed");
            }
            tracing::debug!(
                scopes = %scope_list,
                expires_in_s = expires_on.saturating_sub(now),
                "token cache hit"
            );
            return Lookup::Hit(token);
        }
        tracing::debug!(scopes = %scope_list, "token cache miss; asking the credential while holding the cache lock");
        Lookup::Miss(Miss {
            access: access.detach(),
            document,
            writable,
        })
    }

    /// The plugin's `begin`; when the stored cache cannot be read back (`CorruptData`: an
    /// encrypted file that does not decrypt, e.g. tampered with), the file is kept aside
    /// as a corrupt document is and `begin` is tried once more, on an empty cache. Without
    /// this, every later token request would meet the same error and none would be cached.
    fn begin(&self) -> crate::Result<CacheAccess<'_, Box<dyn CachePersistence>>> {
        match self.plugin.begin() {
            Err(error) if error.kind() == ErrorKind::CorruptData => {
                if self.set_aside_unreadable(&error) {
                    self.plugin.begin()
                } else {
                    Err(error)
                }
            }
            other => other,
        }
    }

    /// Under the cache lock, and only if the stored data still cannot be read (a peer may
    /// have saved over it since), moves the cache file aside. Whether it did.
    fn set_aside_unreadable(&self, error: &crate::Error) -> bool {
        let persistence = self.plugin.persistence();
        let guard = match persistence
            .lock(CachePlugin::<Box<dyn CachePersistence>>::DEFAULT_LOCK_WAIT)
        {
            Ok(guard) => guard,
            Err(lock_error) => {
                tracing::warn!(%error, %lock_error, "the token cache cannot be read and could not be locked to keep it aside");
                return false;
            }
        };
        if !matches!(persistence.load(), Err(e) if e.kind() == ErrorKind::CorruptData) {
            // Readable now: a peer replaced it. The retried begin reads it.
            return true;
        }
        let moved = self.quarantine.set_aside_stored_file();
        drop(guard);
        match moved {
            Ok(Some(kept_at)) => {
                tracing::warn!(
                    %error,
                    kept_at = %kept_at.display(),
                    "the stored token cache cannot be read; kept it aside and starting with an empty cache"
                );
                true
            }
            Ok(None) => false,
            Err(io_error) => {
                tracing::error!(
                    %error,
                    %io_error,
                    "the stored token cache cannot be read and could not be kept aside; leaving it untouched"
                );
                false
            }
        }
    }

    /// Adds `entry` to the document of `miss`, saves it and releases the lock.
    fn commit(&self, miss: Miss, entry: &AccessTokenEntry) {
        let Miss {
            access,
            mut document,
            writable,
        } = miss;
        let mut access = self.plugin.resume(access);
        if !writable {
            tracing::warn!(
                "not saving the token cache: its corrupt content could not be kept aside"
            );
            return;
        }
        document.upsert_access_token(entry);
        document.upsert_app_metadata(&AppMetadataEntry {
            client_id: self.identity.client_id.clone(),
            environment: self.environment.clone(),
            family_id: None,
        });
        let bytes = document.to_bytes();
        let len = bytes.len();
        access.set_data(bytes);
        match access.commit() {
            Ok(()) => tracing::debug!(len, "token cache saved"),
            Err(error) => tracing::warn!(
                %error,
                "saving the token cache failed; the new token is returned but not shared"
            ),
        }
    }

    /// The document of `data`, parsed only when the plugin's `generation` of the blob
    /// moved since the last parse; and whether saving over `data` loses nothing.
    fn document(&self, data: Option<&[u8]>, generation: u64) -> (TokenCacheDocument, bool) {
        let mut parsed = self
            .parsed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((seen, document)) = parsed.as_ref()
            && *seen == generation
        {
            return (document.clone(), true);
        }
        tracing::debug!(len = data.map(<[u8]>::len), "token cache reloaded");
        let decoded = decode_or_recover(data, &self.quarantine);
        if decoded.writable {
            // Also for a corrupt blob already kept aside: it is not kept twice.
            *parsed = Some((generation, decoded.document.clone()));
        }
        (decoded.document, decoded.writable)
    }

    /// The cache entry for a token the inner credential returned.
    fn entry_for(&self, scopes: &[&str], token: &AccessToken) -> AccessTokenEntry {
        let now = unix_now();
        let expires_on = u64::try_from(token.expires_on.unix_timestamp()).unwrap_or(0);
        AccessTokenEntry {
            home_account_id: String::new(),
            environment: self.environment.clone(),
            client_id: self.identity.client_id.clone(),
            realm: self.identity.tenant_id.clone(),
            target: AccessTokenEntry::target_of(scopes),
            secret: Secret::new(token.token.secret()),
            cached_at: now,
            expires_on,
            extended_expires_on: None,
            refresh_on: None,
            token_type: "Bearer".into(),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn to_azure_error(error: crate::Error) -> azure_core::Error {
    azure_core::Error::new(azure_core::error::ErrorKind::Credential, error)
}
