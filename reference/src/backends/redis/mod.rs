//! [`RedisPersistence`]: the cache blob on a Redis server, shared by the processes of
//! many machines (the model is Microsoft.Identity.Web's distributed token cache).

mod link;
mod lock;

use std::{
    fmt,
    sync::{Arc, LazyLock},
    time::Duration,
};

use ::redis::{Client, Script, Value};

use self::{
    link::{Link, Timeouts},
    lock::RedisLock,
};
use crate::{
    error::{Error, ErrorKind, Result},
    name::{LOCK_SUFFIX, validate_name},
    persistence::{CachePersistence, Capabilities, ChangeToken, Description, LockGuard},
};

/// Removes the blob and its version, keeping the save counter; a key of another type
/// (damaged by hand) is removed whole, so `delete` always clears the slot.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local t = redis.call('TYPE', KEYS[1]).ok
        if t == 'none' then return 0 end
        if t ~= 'hash' then return redis.call('DEL', KEYS[1]) end
        if redis.call('HDEL', KEYS[1], 'data', 'version') > 0 then return 1 end
        return 0",
    )
});

/// The cache blob on a Redis server (feature `redis`), with a lock that excludes every
/// process of every machine using the same server and key.
///
/// The blob is stored as it is, unencrypted, like [`FilePersistence`](crate::FilePersistence):
/// protect the server (ACL user per application, TLS, a private network).
///
/// # Keys
///
/// For the cache name `name` (checked by [`validate_name`]) and the key prefix (default
/// [`DEFAULT_KEY_PREFIX`](Self::DEFAULT_KEY_PREFIX)):
/// - `<prefix><name>`: a hash with the blob (`data`), a random tag drawn for the save
///   that stored it (`version`) and the save counter (`saves`). Delete removes `data` and
///   `version` and keeps the counter, so a later save never repeats a change token.
/// - `<prefix><name>.lockfile`: the lock, a string with the holder's token and a TTL.
///   Cache names cannot end in `.lockfile`, so no cache's record is another's lock.
///
/// Give the keys no TTL and run the server with `maxmemory-policy noeviction` (or a
/// `volatile-*` policy): a policy that evicts any key may drop a cache.
///
/// # Guarantees
///
/// - **Atomic saves**: one `MULTI`/`EXEC` transaction stores the blob with its tag and
///   increments the counter: a reader never sees a new blob with an old version or the
///   reverse, nor part of a blob; a transaction the server refuses (out of memory, a key
///   of another type) changes nothing. (A transaction rather than a Lua script: a script
///   copies the blob twice more on the server, which made 1 MiB saves three times slower.)
/// - **Durability** is the server's: a save is acknowledged once the server has it in
///   memory. For the file plugin's guarantee run the server with `appendonly yes` and
///   `appendfsync always`; `everysec` (the usual setting) can lose the last second of
///   saves on a power loss.
/// - **Change token**: `<counter>.<tag>`, read in one command: the server-side counter
///   incremented by every save in the transaction that stores the blob, and that save's
///   random tag, which keeps tokens unique even when the server lost its data (restarted
///   without persistence, flushed) and the counter started again.
/// - **Size**: blobs up to [`DEFAULT_MAX_SIZE`](Self::DEFAULT_MAX_SIZE) (or [`with_max_size`](Self::with_max_size));
///   larger ones fail with [`TooLarge`](ErrorKind::TooLarge) before anything is sent.
/// - **Errors**: a server that cannot be reached (refused, dropped, timed out) is
///   [`StorageUnavailable`](ErrorKind::StorageUnavailable) with the client's error as
///   `source()`; the next call opens a new connection, so calls work again as soon as
///   the server is back. A server out of memory (`maxmemory` with `noeviction`) is
///   [`StorageFull`](ErrorKind::StorageFull), an ACL refusal or wrong password
///   [`AccessDenied`](ErrorKind::AccessDenied), a key of the wrong type
///   [`CorruptData`](ErrorKind::CorruptData) (left in place). Nothing logged or reported
///   contains the blob or the URL's password.
///
/// # Lock
///
/// `SET <lock key> <token> NX PX <ttl>` with a token drawn for each acquisition. A waiter
/// retries after pauses of 1 ms growing to 16 ms, each with jitter, until its wait runs
/// out, then fails with [`LockTimeout`](ErrorKind::LockTimeout) naming the lock key.
/// Release and extension run a script that acts only while the key holds the guard's
/// token, so a guard whose hold expired never removes someone else's lock (its release
/// then reports an error of kind [`Other`](ErrorKind::Other) saying so).
///
/// The TTL ([`DEFAULT_LOCK_TTL`](Self::DEFAULT_LOCK_TTL), or [`with_lock_ttl`](Self::with_lock_ttl)) bounds how
/// long a dead holder blocks the others: a holder killed, or cut off from the server,
/// loses the lock at most one TTL after its last extension. A live holder does not lose
/// it however slow it is: a watchdog thread extends the lock every third of the TTL for
/// as long as the guard lives, over a connection of its own (a long save does not delay
/// it). The limit: a holder whose whole process is frozen (stopped, swapped out) or cut
/// off from the server for longer than the TTL loses the lock while it still has the
/// guard; a lock held by TTL cannot prevent that, so choose a TTL well above the longest
/// such pause you expect, and below how long you can afford to wait for a dead holder.
///
/// # Example
///
/// ```no_run
/// use identity_cache_persistence::{CachePlugin, RedisPersistence};
///
/// // A user and password of its own per service, in the URL; keys under its own prefix.
/// let persistence = RedisPersistence::new("redis://svc:secret@cache.internal:6379/0", "msal.cache")?
///     .with_key_prefix("my-service:");
/// let cache = CachePlugin::new(persistence);
/// cache.update(|blob| {
///     let json = blob.take().unwrap_or_else(|| b"{}".to_vec());
///     *blob = Some(json); // the MSAL cache JSON, opaque to the plugin
/// })?;
/// # Ok::<(), identity_cache_persistence::Error>(())
/// ```
///
/// # Connections
///
/// Each handle opens (on first use) one connection for the blob and one for the lock and
/// its watchdog; clones share them. A standalone server or a primary is expected: the
/// client does not follow cluster redirections.
#[derive(Clone)]
pub struct RedisPersistence {
    data: Arc<Link>,
    lock: RedisLock,
    key: String,
    name: String,
    max_size: usize,
    client: Client,
    timeouts: Timeouts,
}

impl RedisPersistence {
    /// The key prefix when none is given.
    pub const DEFAULT_KEY_PREFIX: &str = "identity-cache:";
    /// How long a lock lasts without its watchdog extending it; see [`RedisPersistence`].
    pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(3);
    /// The largest blob accepted when no other limit is set: the Secret Service's, far
    /// above any real token cache and far below Redis's 512 MiB per value.
    pub const DEFAULT_MAX_SIZE: usize = 32 * 1024 * 1024;

    /// A persistence for the cache `name` on the server at `url`. Connects to nothing yet.
    ///
    /// `url` is a Redis URL, `redis://[user:password@]host[:port][/db]` or
    /// `redis+unix:///path/to/socket`. TLS (`rediss://`) is not built in: the client is
    /// compiled without a TLS stack, so such a URL is refused as not valid. An invalid `name` fails with
    /// [`InvalidName`](ErrorKind::InvalidName), a URL that does not parse with
    /// [`StorageUnavailable`](ErrorKind::StorageUnavailable) (the message does not repeat
    /// the URL, which may hold a password).
    pub fn new(url: &str, name: &str) -> Result<Self> {
        validate_name(name)?;
        let client = Client::open(url).map_err(|e| {
            Error::with_source(
                ErrorKind::StorageUnavailable,
                "the Redis URL of the token cache is not valid",
                e,
            )
        })?;
        let timeouts = Timeouts {
            connect: Duration::from_secs(5),
            io: Duration::from_secs(10),
        };
        Ok(Self::build(
            client,
            timeouts,
            name,
            Self::DEFAULT_KEY_PREFIX,
            Self::DEFAULT_LOCK_TTL,
            Self::DEFAULT_MAX_SIZE,
        ))
    }

    fn build(
        client: Client,
        timeouts: Timeouts,
        name: &str,
        prefix: &str,
        ttl: Duration,
        max_size: usize,
    ) -> Self {
        let info = client.get_connection_info();
        let server = format!("redis {} db {}", info.addr(), info.redis_settings().db());
        let key = format!("{prefix}{name}");
        let link = |what: &str| {
            Arc::new(Link::new(
                client.clone(),
                timeouts,
                format!("{server} key {key}{what}"),
            ))
        };
        RedisPersistence {
            data: link(""),
            lock: RedisLock {
                link: link(LOCK_SUFFIX),
                key: format!("{key}{LOCK_SUFFIX}"),
                ttl: ttl.max(Duration::from_millis(30)),
            },
            key,
            name: name.to_owned(),
            max_size,
            client,
            timeouts,
        }
    }

    fn rebuild(self, prefix: &str, ttl: Duration) -> Self {
        Self::build(
            self.client,
            self.timeouts,
            &self.name,
            prefix,
            ttl,
            self.max_size,
        )
    }

    /// Keys start with `prefix` instead of [`DEFAULT_KEY_PREFIX`](Self::DEFAULT_KEY_PREFIX), e.g. one per
    /// application sharing a server. Set it before the first call (it opens new
    /// connections).
    pub fn with_key_prefix(self, prefix: &str) -> Self {
        let ttl = self.lock.ttl;
        self.rebuild(prefix, ttl)
    }

    /// The lock lasts `ttl` without extension (at least 30 ms); see the type's docs.
    pub fn with_lock_ttl(self, ttl: Duration) -> Self {
        let prefix = self.prefix().to_owned();
        self.rebuild(&prefix, ttl)
    }

    /// Blobs up to `max_size` bytes are accepted (the server's own limit is 512 MiB).
    pub fn with_max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }

    /// Connecting may take `connect`, each read or write on the socket `io`: a server that
    /// stops answering fails the call with `StorageUnavailable` after that long.
    pub fn with_timeouts(mut self, connect: Duration, io: Duration) -> Self {
        self.timeouts = Timeouts { connect, io };
        let prefix = self.prefix().to_owned();
        let ttl = self.lock.ttl;
        self.rebuild(&prefix, ttl)
    }

    /// The key of the record (blob, version, save counter).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key of the lock.
    pub fn lock_key(&self) -> &str {
        &self.lock.key
    }

    fn prefix(&self) -> &str {
        self.key
            .strip_suffix(self.name.as_str())
            .unwrap_or_default()
    }

    fn corrupt(&self, why: &str) -> Error {
        Error::new(
            ErrorKind::CorruptData,
            format!(
                "the cache record at {} {why}; it was left as it is",
                self.data.location()
            ),
        )
    }
}

impl CachePersistence for RedisPersistence {
    fn describe(&self) -> Description {
        Description::new(
            "redis",
            self.data.location(),
            Capabilities::full().max_size(Some(self.max_size)),
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        let reply: Value = self.data.run("load the cache", |c| {
            ::redis::cmd("HMGET")
                .arg(&self.key)
                .arg("data")
                .arg("version")
                .query(c)
        })?;
        // Matched by hand: the client's conversions put the value in their error messages.
        match reply {
            Value::Array(fields) => match <[Value; 2]>::try_from(fields) {
                Ok([Value::BulkString(data), Value::BulkString(_)]) => Ok(Some(data)),
                Ok([Value::Nil, Value::Nil]) => Ok(None),
                Ok([Value::Nil, _] | [_, Value::Nil]) => {
                    Err(self.corrupt("has a blob without a version or a version without a blob"))
                }
                _ => Err(self.corrupt("holds fields of an unexpected type")),
            },
            _ => Err(self.corrupt("could not be read as a hash")),
        }
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        if data.len() > self.max_size {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "a cache of {} bytes is larger than the {} bytes {} accepts",
                    data.len(),
                    self.max_size,
                    self.data.location()
                ),
            ));
        }
        let nonce = format!("{:016x}", fastrand::u64(..));
        let _: Value = self.data.run("save the cache", |c| {
            ::redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&self.key)
                .arg("data")
                .arg(data)
                .arg("version")
                .arg(&nonce)
                .ignore()
                .cmd("HINCRBY")
                .arg(&self.key)
                .arg("saves")
                .arg(1)
                .ignore()
                .query(c)
        })?;
        Ok(())
    }

    fn delete(&self) -> Result<bool> {
        let reply: Value = self
            .data
            .run("delete the cache", |c| DELETE.key(&self.key).invoke(c))?;
        Ok(matches!(reply, Value::Int(n) if n > 0))
    }

    fn version(&self) -> Result<Option<ChangeToken>> {
        let reply: Value = self.data.run("read the cache version", |c| {
            ::redis::cmd("HMGET")
                .arg(&self.key)
                .arg("version")
                .arg("saves")
                .query(c)
        })?;
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        match reply {
            Value::Array(fields) => match <[Value; 2]>::try_from(fields) {
                Ok([Value::Nil, _]) => Ok(None),
                Ok([Value::BulkString(tag), Value::BulkString(saves)]) => Ok(Some(
                    ChangeToken::new(format!("{}.{}", text(&saves), text(&tag))),
                )),
                _ => Err(self.corrupt("has a version without a save counter")),
            },
            _ => Err(self.corrupt("could not be read as a hash")),
        }
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        self.lock.acquire(wait)
    }
}

impl fmt::Debug for RedisPersistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the client: its connection info holds the password.
        f.debug_struct("RedisPersistence")
            .field("location", &self.data.location())
            .field("lock_key", &self.lock.key)
            .field("lock_ttl", &self.lock.ttl)
            .field("max_size", &self.max_size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_not_shown() {
        let p = RedisPersistence::new("redis://svc:hunter2@127.0.0.1:1/3", "msal.cache")
            .expect("valid URL");
        let shown = format!("{p:?} {}", p.describe().location);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("127.0.0.1:1 db 3"), "{shown}");
        let err = p.load().expect_err("nothing listens on port 1");
        assert_eq!(err.kind(), ErrorKind::StorageUnavailable);
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }

    #[test]
    fn keys_follow_prefix_and_name() {
        let p = RedisPersistence::new("redis://127.0.0.1:1/", "msal.cache")
            .expect("valid URL")
            .with_key_prefix("svc:")
            .with_lock_ttl(Duration::from_secs(7));
        assert_eq!(p.key(), "svc:msal.cache");
        assert_eq!(p.lock_key(), "svc:msal.cache.lockfile");
        assert_eq!(p.lock.ttl, Duration::from_secs(7));
    }

    #[test]
    fn bad_names_and_urls_are_refused() {
        let err = RedisPersistence::new("redis://127.0.0.1/", "../x").expect_err("bad name");
        assert_eq!(err.kind(), ErrorKind::InvalidName);
        for url in ["not a url", "rediss://127.0.0.1/"] {
            let err = RedisPersistence::new(url, "msal.cache").expect_err(url);
            assert_eq!(err.kind(), ErrorKind::StorageUnavailable, "{url}");
        }
    }

    #[test]
    fn oversized_blob_is_refused_before_sending() {
        // Nothing listens on port 1: a TooLarge answer shows nothing was sent.
        let p = RedisPersistence::new("redis://127.0.0.1:1/", "msal.cache")
            .expect("valid URL")
            .with_max_size(4);
        assert_eq!(
            p.save(b"12345").expect_err("too large").kind(),
            ErrorKind::TooLarge
        );
    }
}
