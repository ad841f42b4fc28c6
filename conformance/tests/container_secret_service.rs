//! Container tests: the Secret Service backend against gnome-keyring running in a Docker
//! container, reached over D-Bus on TCP, including the whole conformance suite.
//!
//! The image (`identity-cache-libsecret:1`, or `IDENTITY_CACHE_LIBSECRET_IMAGE`) is built
//! locally from Debian packages by `ci/build-test-image.sh`; `ci/container-tests.sh`
//! builds it when absent and runs this target. One container serves the whole run; how
//! it is started and reached is in `libsecret_container/mod.rs`.
//!
//! Every handle is given the address explicitly (`with_bus_address`); the process
//! environment is never changed. Worker processes of the multi-process cases are this
//! binary again, told the address through `IDENTITY_CACHE_CONTAINER_BUS`.
//!
//! Without a Docker engine or without the image, every test is reported as ignored with
//! the reason; with `CI` set, that fails the run instead.
//!
//! The conformance cases keep their names (`lock::…`); the smoke and backend tests are
//! `container::…`. Filter as usual: `cargo test -p conformance --test
//! container_secret_service -- container::`.
//!
//! This lives in the conformance package rather than the reference crate's tests because
//! it is the conformance suite run against another storage: the suite, its harness and
//! the worker re-execution are here, and the reference crate cannot depend on the suite.

#[cfg(target_os = "linux")]
#[allow(
    dead_code,
    reason = "the container's bus is reached over TCP, so its factory has no fault hooks (they relay a Unix socket)"
)]
mod bus_factory;
#[cfg(target_os = "linux")]
mod libsecret_container;
#[cfg(target_os = "linux")]
include!("../../reference/tests/skip/report.rs");
#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    // No trials: the Secret Service backend exists on Linux only.
    eprintln!("SKIP container_secret_service: the Secret Service backend is Linux-only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::{
        io::Write,
        process::{Command, Stdio},
        sync::Arc,
        time::Instant,
    };

    use super::bus_factory::BusFactory;
    use super::libsecret_container::{Started, check_engine_and_image, in_ci};
    use conformance::{Suite, harness, protocol::SelfExecLauncher};
    use identity_cache_persistence::{
        CachePersistence, ErrorKind, KeyringProfile, Result, SecretServicePersistence,
    };
    use libtest_mimic::{Arguments, Failed, Trial};
    use testcontainers::core::ExecCommand;

    const TARGET: &str = "container_secret_service";
    /// Tells worker processes the bus address of the container the parent started.
    const BUS_ENV: &str = "IDENTITY_CACHE_CONTAINER_BUS";
    /// The unix socket of the bus inside the container, for `docker exec` clients.
    const INNER_BUS: &str = "unix:path=/run/user/0/bus";

    /// Where the bus is, in the factory's label.
    const PLACE: &str = "in a container";

    fn factory(address: impl Into<String>) -> BusFactory {
        BusFactory::new(address, PLACE)
    }

    pub fn main() {
        // A worker serves the parent's container; stdout is the protocol from here on.
        super::bus_factory::serve_worker_if_asked(BUS_ENV, PLACE);

        let args = Arguments::from_args();
        let image = super::libsecret_container::image();

        // Listing starts nothing (nextest lists before it runs).
        if args.list {
            let suite = make_suite(factory("tcp:host=127.0.0.1,port=1"));
            let trials = all_trials(None, &suite);
            libtest_mimic::run(&args, trials).exit();
        }

        let started = match check_engine_and_image(&image).and_then(|()| start(&image)) {
            Ok(started) => started,
            Err(reason) => {
                let reason = format!("{reason}; these tests need the {image} container");
                if in_ci() {
                    eprintln!("FAIL container_secret_service: CI is set and {reason}");
                    std::process::exit(1);
                }
                super::report_skip("container_secret_service (the whole suite)", &reason);
                let suite = make_suite(factory("tcp:host=127.0.0.1,port=1"));
                let trials = all_trials(None, &suite)
                    .into_iter()
                    .map(|t| t.with_ignored_flag(true))
                    .collect();
                let conclusion = libtest_mimic::run(&args, trials);
                // Again below the list of ignored tests, where it is seen.
                eprintln!("SKIP container_secret_service: {reason}");
                conclusion.exit();
            }
        };
        let address = started.address.clone();
        let suite = make_suite(factory(address.clone()));
        let launcher = match SelfExecLauncher::new() {
            Ok(l) => l.env(BUS_ENV, &address),
            Err(e) => {
                eprintln!("container_secret_service: cannot start workers: {e}");
                std::process::exit(2);
            }
        };
        let suite = suite.with_launcher(Arc::new(launcher));
        eprintln!(
            "container_secret_service: {image} ready {} ms after start, bus {address}; checking {} with seed {}",
            started.ready_after.as_millis(),
            suite.label(),
            suite.config().seed
        );
        let container = Arc::new(started);
        let run_start = Instant::now();
        let trials = all_trials(Some(&container), &suite);
        let conclusion = libtest_mimic::run(&args, trials);
        eprintln!(
            "container_secret_service: tests took {} ms",
            run_start.elapsed().as_millis()
        );
        // process::exit runs no destructors: stop the container and remove the suite's
        // scratch directory first.
        drop(suite);
        let stop = Instant::now();
        drop(container);
        eprintln!(
            "container_secret_service: container removed in {} ms",
            stop.elapsed().as_millis()
        );
        conclusion.exit()
    }

    fn make_suite(factory: BusFactory) -> Suite {
        harness::suite_from_env(Arc::new(factory), "ci/container-tests.sh")
    }

    /// The container tests, then the conformance cases. Without a container (listing,
    /// skipping) the trials are made but never run.
    fn all_trials(container: Option<&Arc<Started>>, suite: &Suite) -> Vec<Trial> {
        type Test = fn(&Started) -> std::result::Result<(), Failed>;
        let ours: [(&str, Test); 3] = [
            (
                "container::secret_tool_on_the_host_stores_and_looks_up_over_tcp",
                secret_tool_smoke,
            ),
            (
                "container::backend_round_trips_every_profile_into_the_container_keyring",
                backend_round_trips,
            ),
            (
                "container::faults_locked_keyring_no_secret_service_no_bus",
                faults,
            ),
        ];
        let mut trials: Vec<Trial> = ours
            .into_iter()
            .map(|(name, test)| {
                let container = container.cloned();
                Trial::test(name, move || match container {
                    Some(c) => test(&c),
                    None => Err("no container".into()),
                })
                .with_kind("container")
            })
            .collect();
        trials.extend(harness::trials(suite));
        trials
    }

    /// Starts a container of `image` for this target.
    fn start(image: &str) -> std::result::Result<Started, String> {
        super::libsecret_container::start(image, TARGET)
    }

    impl Started {
        /// Runs `script` with `sh -c` in the container, on its bus; its stdout, or an error
        /// with its exit code and stderr.
        fn sh(&self, script: &str) -> std::result::Result<Vec<u8>, Failed> {
            let script = format!("export DBUS_SESSION_BUS_ADDRESS={INNER_BUS}; {script}");
            // The output is read to its end: a daemon started by the script must not
            // keep stdout or stderr open (redirect it), or this waits for ever.
            let mut result = self
                .container
                .exec(ExecCommand::new(["timeout", "60", "sh", "-c", &script]))
                .map_err(|e| format!("docker exec {script:?}: {e}"))?;
            let stdout = result.stdout_to_vec().map_err(|e| e.to_string())?;
            let stderr = result.stderr_to_vec().map_err(|e| e.to_string())?;
            let code = result.exit_code().map_err(|e| e.to_string())?;
            if code != Some(0) {
                return Err(format!(
                    "in the container, {script:?} exited with {code:?}: {}",
                    String::from_utf8_lossy(&stderr)
                )
                .into());
            }
            Ok(stdout)
        }

        /// `secret-tool lookup` inside the container: what its keyring holds.
        fn lookup_inside(&self, attributes: &[(&str, &str)]) -> Option<Vec<u8>> {
            let args: Vec<String> = attributes
                .iter()
                .flat_map(|(k, v)| [quote(k), quote(v)])
                .collect();
            self.sh(&format!("secret-tool lookup {}", args.join(" ")))
                .ok()
        }
    }

    fn quote(s: &str) -> String {
        format!("'{}'", s.replace('\'', r"'\''"))
    }

    fn check(ok: bool, what: impl FnOnce() -> String) -> std::result::Result<(), Failed> {
        if ok { Ok(()) } else { Err(what().into()) }
    }

    /// `secret-tool` on the host, whose libsecret reaches the container's bus over TCP:
    /// proves the container, the published port and ANONYMOUS auth work, independently
    /// of our code.
    fn secret_tool_smoke(c: &Started) -> std::result::Result<(), Failed> {
        let host_tool = |args: &[&str], input: Option<&[u8]>| {
            let mut child = match Command::new("secret-tool")
                .args(args)
                .env("DBUS_SESSION_BUS_ADDRESS", &c.address)
                .env_remove("DISPLAY")
                .env_remove("WAYLAND_DISPLAY")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
            {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !in_ci() => {
                    return Err(None);
                }
                Err(e) => return Err(Some(format!("run secret-tool: {e}"))),
            };
            if let Some(stdin) = child.stdin.take() {
                let mut stdin = stdin;
                let _ = stdin.write_all(input.unwrap_or_default());
            }
            let out = child
                .wait_with_output()
                .map_err(|e| Some(format!("wait for secret-tool: {e}")))?;
            if out.status.success() {
                Ok(out.stdout)
            } else {
                Err(Some(format!(
                    "secret-tool {args:?}: {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )))
            }
        };
        let token = format!("smoke-{}", fastrand::u64(..));
        let attrs = ["container-smoke", token.as_str()];
        let stored = host_tool(
            &["store", "--label=container smoke", attrs[0], attrs[1]],
            Some(token.as_bytes()),
        );
        match stored {
            Ok(_) => {}
            // Not CI and no secret-tool on the host: nothing to prove this with.
            Err(None) => {
                super::report_skip(
                    "container_secret_service secret-tool smoke test",
                    "secret-tool (libsecret-tools) is not installed",
                );
                return Ok(());
            }
            Err(Some(e)) => return Err(e.into()),
        }
        let looked_up =
            host_tool(&["lookup", attrs[0], attrs[1]], None).map_err(|e| e.unwrap_or_default())?;
        check(looked_up == token.as_bytes(), || {
            format!(
                "host lookup returned {:?}",
                String::from_utf8_lossy(&looked_up)
            )
        })?;
        // And it is the container's keyring that holds it.
        let inside = c.lookup_inside(&[(attrs[0], attrs[1])]);
        check(inside.as_deref() == Some(token.as_bytes()), || {
            format!("inside the container, lookup returned {inside:?}")
        })?;
        host_tool(&["clear", attrs[0], attrs[1]], None).map_err(|e| e.unwrap_or_default())?;
        check(c.lookup_inside(&[(attrs[0], attrs[1])]).is_none(), || {
            "the item is still there after secret-tool clear".into()
        })
    }

    fn random_bytes(len: usize) -> Vec<u8> {
        let mut data = vec![0; len];
        fastrand::fill(&mut data);
        data
    }

    /// The backend, in every profile, stores into the container's keyring: what it saves
    /// it loads back (absent, empty, binary, 4 MiB), `secret-tool` inside the container
    /// finds the item under the profile's attributes, and delete removes it.
    fn backend_round_trips(c: &Started) -> std::result::Result<(), Failed> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // A name of its own: the conformance cases run alongside, in the python profile.
        let name = format!("container-round-trip-{}", fastrand::u64(..));
        let big = random_bytes(4 * 1024 * 1024);
        let binary: Vec<u8> = (0..=255).collect();
        for profile in KeyringProfile::ALL {
            let cache = SecretServicePersistence::new(dir.path().join(&name), profile)?
                .with_bus_address(&c.address);
            cache.validate()?;
            check(cache.load()?.is_none(), || {
                format!("{profile}: absent at first")
            })?;
            for (what, data) in [
                ("empty", &b""[..]),
                ("binary", &binary[..]),
                ("4 MiB", &big[..]),
                ("json", &b"{\"AccessToken\": {}}"[..]),
            ] {
                cache.save(data)?;
                let loaded = cache.load()?;
                check(loaded.as_deref() == Some(data), || {
                    format!("{profile}: {what} does not round-trip")
                })?;
            }
            let attributes = profile.attributes(&name);
            let lookup: Vec<(&str, &str)> = attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let inside = c.lookup_inside(&lookup);
            let expected = match profile {
                KeyringProfile::AzureIdentityDotNet => "eyJBY2Nlc3NUb2tlbiI6IHt9fQ==".as_bytes(),
                _ => &b"{\"AccessToken\": {}}"[..],
            };
            check(inside.as_deref() == Some(expected), || {
                format!(
                    "{profile}: secret-tool lookup {lookup:?} inside the container gave {:?}",
                    inside.map(|b| String::from_utf8_lossy(&b).into_owned())
                )
            })?;
            check(cache.delete()?, || {
                format!("{profile}: delete found nothing")
            })?;
            check(cache.load()?.is_none(), || {
                format!("{profile}: loads after delete")
            })?;
            check(c.lookup_inside(&lookup).is_none(), || {
                format!("{profile}: the item is still in the container after delete")
            })?;
        }
        Ok(())
    }

    /// Real faults, in a container of their own (they stop the keyring for everyone):
    /// a locked collection (locked through the Secret Service API, `Service.Lock`),
    /// no Secret Service on the bus (gnome-keyring killed), and no bus (the container
    /// gone). Each gives its typed error from the probe, save and load, and what was
    /// stored before the fault is still there after it.
    fn faults(shared: &Started) -> std::result::Result<(), Failed> {
        let c = start(&shared.image)?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let cache = SecretServicePersistence::new(
            dir.path().join("faults.cache"),
            KeyringProfile::default(),
        )?
        .with_bus_address(&c.address);
        cache.save(b"before the fault")?;

        // Locked.
        // Service.Lock, as a screen locker does it (libsecret 0.20.5's `secret-tool lock
        // --collection` fails on an assertion and hangs).
        c.sh(
            "dbus-send --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets \
             org.freedesktop.Secret.Service.Lock \
             array:objpath:/org/freedesktop/secrets/collection/login",
        )?;
        let locked = c.sh("dbus-send --print-reply --dest=org.freedesktop.secrets \
             /org/freedesktop/secrets/collection/login org.freedesktop.DBus.Properties.Get \
             string:org.freedesktop.Secret.Collection string:Locked")?;
        check(
            String::from_utf8_lossy(&locked).contains("boolean true"),
            || {
                format!(
                    "the collection is not locked: {}",
                    String::from_utf8_lossy(&locked)
                )
            },
        )?;
        expect_kind(
            "locked: validate",
            cache.validate(),
            ErrorKind::AccessDenied,
        )?;
        expect_kind(
            "locked: save",
            cache.save(b"during the fault"),
            ErrorKind::AccessDenied,
        )?;
        expect_kind("locked: load", cache.load(), ErrorKind::AccessDenied)?;

        // Unlocking through the API needs a prompt: restart the daemon on the same
        // keyring file instead, which --unlock opens unlocked.
        c.sh(
            "kill $(pidof gnome-keyring-daemon) || true; \
             while dbus-send --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
               org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets | grep -q true; do sleep 0.05; done; \
             printf %s \"${KEYRING_PASSWORD:-test}\" | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; \
             until dbus-send --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
               org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets | grep -q true; do sleep 0.05; done",
        )?;
        let after = cache.load()?;
        check(after.as_deref() == Some(&b"before the fault"[..]), || {
            format!("after the lock, the cache holds {after:?}")
        })?;

        // No Secret Service on the bus.
        c.sh(
            "kill $(pidof gnome-keyring-daemon); \
             while dbus-send --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
               org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets | grep -q true; do sleep 0.05; done",
        )?;
        expect_kind(
            "no service: validate",
            cache.validate(),
            ErrorKind::StorageUnavailable,
        )?;
        expect_kind(
            "no service: save",
            cache.save(b"x"),
            ErrorKind::StorageUnavailable,
        )?;
        expect_kind(
            "no service: load",
            cache.load(),
            ErrorKind::StorageUnavailable,
        )?;

        // No bus at all: the container is gone.
        let address = c.address.clone();
        drop(c);
        let gone = SecretServicePersistence::new(
            dir.path().join("faults.cache"),
            KeyringProfile::default(),
        )?
        .with_bus_address(&address);
        expect_kind(
            "no bus: validate",
            gone.validate(),
            ErrorKind::StorageUnavailable,
        )?;
        expect_kind("no bus: load", gone.load(), ErrorKind::StorageUnavailable)?;
        Ok(())
    }

    fn expect_kind<T: std::fmt::Debug>(
        what: &str,
        result: Result<T>,
        kind: ErrorKind,
    ) -> std::result::Result<(), Failed> {
        match result {
            Err(e) if e.kind() == kind => Ok(()),
            other => Err(format!("{what}: expected {kind:?}, got {other:?}").into()),
        }
    }
}
