//! The whole suite against the secure-store composition over a store of the `keyring`
//! crate family that this project did not write: `linux-keyutils-keyring-store` (the
//! Linux kernel keyring, no daemon), through `KeyringStore` (feature `keyring-core`).
//! What the store gets wrong is a finding about that store, recorded as a known gap in
//! `tests/keyring_store_keyutils.toml`, never hidden.
//!
//! The marker and the lock file live in the namespace directory, so access denied and
//! disk full are provoked there ([`DirFaults`]); the kernel keyring itself cannot be made
//! unreachable for one namespace only, so storage unavailable is reported as skipped with
//! that reason. Keys go to the keyring the store picks (the session keyring, which the
//! worker processes inherit).

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::Arc;

    use conformance::{DirFaults, Fault, Namespace, PluginFactory};
    use identity_cache_persistence::{
        CachePersistence, Error, KeyringStore, Result, platform::SecretStorePersistence,
        validate_name,
    };
    use keyring_core::CredentialStore;

    /// The service of every entry the suite writes.
    const SERVICE: &str = "identity-cache-conformance";

    /// A kernel "user" key holds at most 32,767 bytes.
    pub const MAX_SIZE: usize = 32_767;

    pub struct KeyutilsFactory {
        store: Arc<CredentialStore>,
        faults: DirFaults,
    }

    impl KeyutilsFactory {
        pub fn new() -> Self {
            let store: Arc<CredentialStore> = match linux_keyutils_keyring_store::Store::new() {
                Ok(store) => store,
                Err(e) => {
                    eprintln!("keyring_store_keyutils: no kernel keyring store: {e}");
                    std::process::exit(2);
                }
            };
            KeyutilsFactory {
                store,
                faults: DirFaults::new().exhausting_inodes(),
            }
        }
    }

    impl PluginFactory for KeyutilsFactory {
        fn label(&self) -> String {
            format!("keyring-core store {}", self.store.vendor())
        }

        fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
            validate_name(&ns.name)?;
            let entry = KeyringStore::new(&self.store, SERVICE, &ns.name)?.with_max_size(MAX_SIZE);
            Ok(Box::new(SecretStorePersistence::new(
                ns.dir.join(&ns.name),
                entry,
            )?))
        }

        fn cleanup(&self, ns: &Namespace) -> Result<()> {
            self.faults.clear_any(&ns.dir)?;
            self.create(ns)?.delete().map(|_| ())
        }

        fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
            match fault {
                Fault::StorageUnavailable => Err(Error::not_supported(
                    &self.label(),
                    "inject_fault(storage_unavailable): the kernel keyring cannot be made unreachable for one namespace",
                )),
                _ => self.faults.inject(&ns.dir, fault),
            }
        }

        fn clear_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
            self.faults.clear(&ns.dir, fault)
        }
    }
}

/// Like `conformance::harness!`, with the store's known gaps applied.
#[cfg(target_os = "linux")]
fn main() {
    use std::sync::Arc;

    use conformance::{Expectations, harness, protocol};

    let factory = linux::KeyutilsFactory::new();
    protocol::serve_worker_if_requested(&factory);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/keyring_store_keyutils.toml"
    );
    let expectations = Expectations::load(path.as_ref()).unwrap_or_else(|e| {
        eprintln!("keyring_store_keyutils: {e}");
        std::process::exit(2);
    });
    let mut suite = harness::suite_from_env(
        Arc::new(factory),
        "cargo test -p conformance --test keyring_store_keyutils --",
    )
    .with_expectations(expectations);
    match protocol::SelfExecLauncher::new() {
        Ok(launcher) => suite = suite.with_launcher(Arc::new(launcher)),
        Err(e) => eprintln!("keyring_store_keyutils: no worker processes ({e})"),
    }
    let conclusion = libtest_mimic::run(
        &libtest_mimic::Arguments::from_args(),
        harness::trials(&suite),
    );
    drop(suite);
    conclusion.exit()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIP keyring_store_keyutils: the kernel keyring is Linux-only");
}
