//! The whole conformance suite against the Secret Service backend, on a private
//! gnome-keyring that this test starts on its own D-Bus bus (the reference crate's
//! `tests/secret_service_support/daemons.rs`): never the developer's keyring.
//!
//! The backend runs in its default profile (Python azure-identity: one item per cache
//! name, so the suite's namespaces do not share an item), its marker files in the
//! namespace directory. Worker processes of the multi-process cases are this binary
//! again, given the bus address in `IDENTITY_CACHE_PRIVATE_BUS`; the process environment
//! is never changed.
//!
//! The keyring is one for the whole run, so a fault in it (stopping the daemon, locking the
//! collection) would hit every case running at the same time. The factory's fault hooks
//! are confined to one namespace instead (`bus_factory`): its own relay to the bus, cut
//! for "storage unavailable", and its marker directory made immutable or full. The
//! reference crate's `tests/secret_service.rs` provokes the keyring-wide faults for real.
//!
//! Without gnome-keyring every case is reported as ignored with the reason; with `CI`
//! set, that fails the run instead.

#[cfg(target_os = "linux")]
#[path = "../../reference/tests/secret_service_support/daemons.rs"]
mod keyring;

#[cfg(target_os = "linux")]
mod bus_factory;
#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIP secret_service: the Secret Service backend is Linux-only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::Arc;

    use conformance::{Suite, harness, protocol::SelfExecLauncher};
    use libtest_mimic::Arguments;

    use super::bus_factory::BusFactory;
    use super::keyring::{PrivateKeyring, in_ci, missing_packages};

    /// Tells worker processes the address of the bus the parent started.
    const BUS_ENV: &str = "IDENTITY_CACHE_PRIVATE_BUS";

    /// Where the bus is, in the factory's label.
    const PLACE: &str = "on a private gnome-keyring";

    pub fn main() {
        // A worker serves the parent's keyring; stdout is the protocol from here on.
        super::bus_factory::serve_worker_if_asked(BUS_ENV, PLACE);
        let args = Arguments::from_args();
        let missing = missing_packages();
        if args.list || !missing.is_empty() {
            // Listing starts nothing; without the tools every case is ignored.
            let suite = make_suite(BusFactory::new("unix:path=/nonexistent", PLACE));
            let mut trials = harness::trials(&suite);
            if !missing.is_empty() && !args.list {
                let reason = format!(
                    "a private Secret Service needs the Debian packages {} (run ci/install-deps.sh)",
                    missing.join(", ")
                );
                if in_ci() {
                    eprintln!("FAIL secret_service: CI is set and {reason}");
                    std::process::exit(1);
                }
                super::keyring::report_skip("secret_service (the whole suite)", &reason);
                trials = trials
                    .into_iter()
                    .map(|t| t.with_ignored_flag(true))
                    .collect();
            }
            libtest_mimic::run(&args, trials).exit();
        }

        let keyring = PrivateKeyring::start();
        let address = keyring.address().to_owned();
        let launcher = match SelfExecLauncher::new() {
            Ok(l) => l.env(BUS_ENV, &address),
            Err(e) => {
                eprintln!("secret_service: cannot start workers: {e}");
                std::process::exit(2);
            }
        };
        let factory = match BusFactory::new(address.clone(), PLACE).with_faults() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("secret_service: cannot set up the fault hooks: {e}");
                std::process::exit(2);
            }
        };
        let suite = make_suite(factory).with_launcher(Arc::new(launcher));
        eprintln!(
            "secret_service: checking {} with seed {}",
            suite.label(),
            suite.config().seed
        );
        let trials = harness::trials(&suite);
        let conclusion = libtest_mimic::run(&args, trials);
        // process::exit runs no destructors: remove the scratch directory and stop the
        // daemons first (which also says so when the keyring's daemon died under the run).
        drop(suite);
        drop(keyring);
        conclusion.exit()
    }

    fn make_suite(factory: BusFactory) -> Suite {
        harness::suite_from_env(
            Arc::new(factory),
            "cargo test -p conformance --test secret_service --",
        )
    }
}
