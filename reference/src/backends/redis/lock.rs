//! The lock of a Redis slot: a key set with `SET NX PX` to a token only its holder knows,
//! kept alive by a watchdog thread while the guard lives, removed only by that token.

use std::{
    sync::{
        Arc, LazyLock,
        mpsc::{self, RecvTimeoutError, Sender},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use ::redis::{Script, Value};

use super::link::Link;
use crate::{
    error::{Error, ErrorKind, Result},
    persistence::{HeldLock, LockGuard},
};

/// The first pause of a waiter; pauses double up to [`MAX_PAUSE`].
const MIN_PAUSE: Duration = Duration::from_millis(1);
/// The longest pause between two attempts of a waiter: a hand-off costs at most this, and
/// a waiter sends at most about 60 requests a second.
const MAX_PAUSE: Duration = Duration::from_millis(16);

/// Deletes the lock key only while it holds the caller's token, so a holder whose lock
/// expired (and was taken by someone else) never removes the new holder's lock.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0",
    )
});

/// Extends the lock key's expiry only while it holds the caller's token.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return 0",
    )
});

/// The lock key of one slot and how long a hold lasts without extension.
#[derive(Debug, Clone)]
pub(crate) struct RedisLock {
    pub(crate) link: Arc<Link>,
    pub(crate) key: String,
    pub(crate) ttl: Duration,
}

impl RedisLock {
    /// Takes the lock, retrying with growing, jittered pauses until `wait` runs out.
    pub(crate) fn acquire(&self, wait: Duration) -> Result<LockGuard> {
        // Unique per acquisition: the pid tells an operator who holds it, the random part
        // tells two acquisitions of one process apart.
        let token = format!("{}:{:032x}", std::process::id(), fastrand::u128(..));
        let start = Instant::now();
        let mut pause = MIN_PAUSE;
        loop {
            if self.try_take(&token)? {
                return Held::start(self.clone(), token).map(LockGuard::new);
            }
            let waited = start.elapsed();
            if waited >= wait {
                return Err(Error::new(
                    ErrorKind::LockTimeout,
                    format!(
                        "could not take the lock {} at {} within {wait:?}: another holder has it",
                        self.key,
                        self.link.location()
                    ),
                ));
            }
            // Jitter spreads waiters that started together, so they do not all ask at once.
            let nap = pause.mul_f64(0.5 + fastrand::f64() / 2.0);
            thread::sleep(nap.min(wait - waited));
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    fn try_take(&self, token: &str) -> Result<bool> {
        let reply: Value = self.link.run("take the lock", |c| {
            ::redis::cmd("SET")
                .arg(&self.key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(millis(self.ttl))
                .query(c)
        })?;
        Ok(matches!(reply, Value::Okay))
    }

    /// Runs a token script; true when the key held `token`.
    fn by_token(&self, script: &Script, what: &str, token: &str) -> Result<bool> {
        let reply: Value = self.link.run(what, |c| {
            script
                .key(&self.key)
                .arg(token)
                .arg(millis(self.ttl))
                .invoke(c)
        })?;
        Ok(matches!(reply, Value::Int(n) if n > 0))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A held lock and its watchdog.
struct Held {
    lock: RedisLock,
    token: String,
    /// Dropping the sender stops the watchdog.
    watchdog: Option<(Sender<()>, JoinHandle<()>)>,
}

impl Held {
    /// Starts the watchdog for a lock just taken; if no thread can be started the lock is
    /// given back, since without extension it would expire under its holder.
    fn start(lock: RedisLock, token: String) -> Result<Held> {
        let (stop, stopped) = mpsc::channel::<()>();
        let dog = lock.clone();
        let dog_token = token.clone();
        let spawned = thread::Builder::new()
            .name("redis-lock-watchdog".into())
            .spawn(move || {
                let every = dog.ttl / 3;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    // A failed call dropped a broken connection: the second try opens a
                    // new one at once, rather than a third of the TTL later.
                    let extended = dog
                        .by_token(&EXTEND, "extend the lock", &dog_token)
                        .or_else(|_| dog.by_token(&EXTEND, "extend the lock", &dog_token));
                    match extended {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(
                                lock = %dog.key,
                                "the cache lock expired before its watchdog extended it; it is no longer held"
                            );
                            return;
                        }
                        // The server is away; the next tick tries again.
                        Err(e) => tracing::warn!(error = %e, "extending the cache lock failed"),
                    }
                }
            });
        match spawned {
            Ok(handle) => Ok(Held {
                lock,
                token,
                watchdog: Some((stop, handle)),
            }),
            Err(e) => {
                let _ = lock.by_token(&RELEASE, "release the lock", &token);
                Err(Error::with_source(
                    ErrorKind::Io,
                    format!(
                        "could not start the watchdog that keeps the lock {} alive",
                        lock.key
                    ),
                    e,
                ))
            }
        }
    }
}

impl HeldLock for Held {
    fn release(mut self: Box<Self>) -> Result<()> {
        if let Some((stop, handle)) = self.watchdog.take() {
            drop(stop);
            // The watchdog only ever extends by token, so waiting for it is only tidiness:
            // it ends at its next receive.
            let _ = handle.join();
        }
        if self
            .lock
            .by_token(&RELEASE, "release the lock", &self.token)?
        {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Other,
            format!(
                "the lock {} at {} had expired before it was released (its holder was paused or cut off from the server for longer than the TTL of {:?}); another process may have taken it, and that lock was left alone",
                self.lock.key,
                self.lock.link.location(),
                self.lock.ttl
            ),
        ))
    }
}
