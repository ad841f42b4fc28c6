//! The whole conformance suite against the Redis backend, on `redis-server` processes this
//! test starts on 127.0.0.1 (the reference crate's `tests/redis_support`): never a system
//! Redis service.
//!
//! - Every case but the `faults` area runs on one server shared by the whole run, keys
//!   under the prefix `conformance:`, as many services share one Redis. Worker processes
//!   of the multi-process cases are this binary again, given the server's URL in
//!   `IDENTITY_CACHE_TEST_REDIS_URL`; the process environment is never changed.
//! - The `faults` cases each get a server of their own (append-only file, fsync on every
//!   write), since their faults are server-wide and would hit the other cases running at
//!   the same time. The faults are real: the server killed and restarted on its port
//!   (unavailable), the ACL stripped of every key (access denied), `maxmemory` set below
//!   what is in use with `noeviction` (full).
//! - Corrupt stored data is a key of another type where the record was.
//!
//! Without `redis-server` every case is reported as ignored with the reason; with `CI`
//! set, that fails the run instead.

#[path = "../../reference/tests/redis_support/mod.rs"]
mod redis_support;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use conformance::{
    Namespace, PluginFactory, Suite,
    factory::Fault,
    harness,
    protocol::{SelfExecLauncher, is_worker, serve_worker_if_requested},
};
use identity_cache_persistence::{
    CachePersistence, Error, ErrorKind, RedisPersistence, Result, validate_name,
};
use libtest_mimic::{Arguments, Trial};
use redis_support::{MISSING, RedisServer, installed, required};

/// Tells worker processes the URL of the server the parent started.
const URL_ENV: &str = "IDENTITY_CACHE_TEST_REDIS_URL";
/// The key prefix of the suite's slots.
const PREFIX: &str = "conformance:";
/// The area whose cases run on servers of their own.
const FAULTS: &str = "faults::";

fn plugin(url: &str, ns: &Namespace) -> Result<RedisPersistence> {
    validate_name(&ns.name)?;
    Ok(RedisPersistence::new(url, &ns.name)?.with_key_prefix(PREFIX))
}

/// Runs an admin command on the server at `url`, for the hooks.
fn admin(url: &str, cmd: &mut redis::Cmd) -> Result<()> {
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .and_then(|mut c| cmd.query::<redis::Value>(&mut c))
        .map(|_| ())
        .map_err(|e| Error::with_source(ErrorKind::Other, "admin command failed", e))
}

/// Removes the record (with its save counter) and the lock, which `delete` leaves.
fn remove_keys(url: &str, ns: &Namespace) -> Result<()> {
    let p = plugin(url, ns)?;
    admin(url, redis::cmd("DEL").arg(p.key()).arg(p.lock_key()))
}

/// Handles on the run's shared server.
#[derive(Debug)]
struct SharedFactory {
    url: String,
}

impl PluginFactory for SharedFactory {
    fn label(&self) -> String {
        format!("redis at {}", self.url)
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        Ok(Box::new(plugin(&self.url, ns)?))
    }

    fn cleanup(&self, ns: &Namespace) -> Result<()> {
        remove_keys(&self.url, ns)
    }

    /// A string where the record (a hash) was: every read answers WRONGTYPE.
    fn corrupt_stored_data(&self, ns: &Namespace) -> Result<()> {
        let p = plugin(&self.url, ns)?;
        admin(
            &self.url,
            redis::cmd("SET").arg(p.key()).arg("not a cache record"),
        )
    }
}

/// Handles on a server per namespace, started on first use, for the fault cases.
#[derive(Default)]
struct FaultFactory {
    servers: Mutex<HashMap<Namespace, RedisServer>>,
}

impl FaultFactory {
    fn with_server<T>(&self, ns: &Namespace, f: impl FnOnce(&mut RedisServer) -> T) -> T {
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        let server = servers.entry(ns.clone()).or_insert_with(|| {
            // Every acknowledged write on disk, so a killed server comes back with it.
            RedisServer::start(&[
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--maxmemory-policy",
                "noeviction",
            ])
        });
        f(server)
    }
}

impl PluginFactory for FaultFactory {
    fn label(&self) -> String {
        "redis, a server per fault case".into()
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        let url = self.with_server(ns, |s| s.url());
        Ok(Box::new(plugin(&url, ns)?))
    }

    fn cleanup(&self, ns: &Namespace) -> Result<()> {
        // The server goes with its namespace.
        self.servers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(ns);
        Ok(())
    }

    fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.with_server(ns, |server| match fault {
            Fault::StorageUnavailable => {
                server.kill();
                Ok(())
            }
            Fault::AccessDenied => admin(
                &server.url(),
                redis::cmd("ACL")
                    .arg("SETUSER")
                    .arg("default")
                    .arg("resetkeys"),
            ),
            Fault::DiskFull => admin(
                &server.url(),
                redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("1"),
            ),
            _ => Err(Error::not_supported(&self.label(), "this fault")),
        })
    }

    fn clear_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.with_server(ns, |server| match fault {
            Fault::StorageUnavailable => {
                server.restart();
                Ok(())
            }
            Fault::AccessDenied => admin(
                &server.url(),
                redis::cmd("ACL").arg("SETUSER").arg("default").arg("~*"),
            ),
            Fault::DiskFull => admin(
                &server.url(),
                redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("0"),
            ),
            _ => Err(Error::not_supported(&self.label(), "this fault")),
        })
    }
}

fn main() {
    // A worker serves the parent's server; stdout is the protocol from here on.
    if is_worker() {
        let Ok(url) = std::env::var(URL_ENV) else {
            eprintln!("redis worker: {URL_ENV} is not set");
            std::process::exit(2);
        };
        serve_worker_if_requested(&SharedFactory { url });
        unreachable!("serve_worker_if_requested exits in a worker");
    }
    let args = Arguments::from_args();
    if args.list || !installed() {
        // Listing starts nothing; without the server every case is ignored.
        let suite = make_suite(SharedFactory {
            url: "redis://127.0.0.1:1/".into(),
        });
        let mut trials = harness::trials(&suite);
        if !installed() && !args.list {
            if required() {
                eprintln!("FAIL redis: CI is set and {MISSING}");
                std::process::exit(1);
            }
            redis_support::report_skip("redis (the whole suite)", MISSING);
            trials = trials
                .into_iter()
                .map(|t| t.with_ignored_flag(true))
                .collect();
        }
        libtest_mimic::run(&args, trials).exit();
    }

    let server = RedisServer::start(&["--maxmemory-policy", "noeviction"]);
    let url = server.url();
    let launcher = match SelfExecLauncher::new() {
        Ok(l) => l.env(URL_ENV, &url),
        Err(e) => {
            eprintln!("redis: cannot start workers: {e}");
            std::process::exit(2);
        }
    };
    let shared = make_suite(SharedFactory { url }).with_launcher(Arc::new(launcher));
    let faults = make_suite(FaultFactory::default());
    eprintln!(
        "redis: checking {} with seed {}",
        shared.label(),
        shared.config().seed
    );
    let in_area = |trials: Vec<Trial>, faults: bool| {
        trials
            .into_iter()
            .filter(move |t| t.name().starts_with(FAULTS) == faults)
    };
    let trials = in_area(harness::trials(&shared), false)
        .chain(in_area(harness::trials(&faults), true))
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    // process::exit runs no destructors: remove the scratch directories and stop the
    // servers first.
    drop(shared);
    drop(faults);
    drop(server);
    conclusion.exit()
}

fn make_suite(factory: impl PluginFactory + 'static) -> Suite {
    harness::suite_from_env(
        Arc::new(factory),
        "cargo test -p conformance --test redis --",
    )
}
