//! The suite against a store of the `keyring` crate family that this project did not
//! write, through `KeyringStore` (feature `keyring-core`) under the secure-store
//! composition, shared by the `keyring_store_*` targets. What a store gets wrong is a
//! finding about that store, recorded as a known gap in the target's `.toml` file and
//! reported on every run, never hidden.
//!
//! The marker and the lock file live in the namespace directory, so access denied and
//! disk full are provoked there ([`DirFaults`]). A store shared by every case cannot be
//! made unreachable for one namespace only, so storage unavailable is reported as skipped
//! with that reason.

use std::sync::Arc;

use conformance::{DirFaults, Expectations, Fault, Namespace, PluginFactory, harness};
use identity_cache_persistence::{
    CachePersistence, Error, KeyringStore, Result, platform::SecretStorePersistence, validate_name,
};
use keyring_core::{CredentialStore, api::CredentialStoreApi};

/// The service of every entry the suite writes.
const SERVICE: &str = "identity-cache-conformance";

/// One keyring-core store as a conformance factory: an entry per namespace name.
pub struct StoreFactory {
    store: Arc<CredentialStore>,
    max_size: Option<usize>,
    faults: DirFaults,
}

impl StoreFactory {
    /// `store`, taking secrets of at most `max_size` bytes when it has a limit.
    pub fn new(store: Arc<CredentialStore>, max_size: Option<usize>) -> Self {
        StoreFactory {
            store,
            max_size,
            faults: DirFaults::new().exhausting_inodes(),
        }
    }
}

impl PluginFactory for StoreFactory {
    fn label(&self) -> String {
        format!("keyring-core store {}", self.store.vendor())
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        validate_name(&ns.name)?;
        let mut entry = KeyringStore::new(&self.store, SERVICE, &ns.name)?;
        if let Some(max) = self.max_size {
            entry = entry.with_max_size(max);
        }
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
                "inject_fault(storage_unavailable): the store serves every case at once and cannot be made unreachable for one namespace",
            )),
            _ => self.faults.inject(&ns.dir, fault),
        }
    }

    fn clear_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.faults.clear(&ns.dir, fault)
    }
}

/// The store `opened` gave, or the end of the run with its error: without its store the
/// target `target` has nothing to judge, and a store that cannot open is no skip.
pub fn open_or_exit<S: CredentialStoreApi + Send + Sync + 'static>(
    target: &str,
    opened: keyring_core::Result<Arc<S>>,
) -> Arc<CredentialStore> {
    match opened {
        Ok(store) => store,
        Err(e) => {
            eprintln!("{target}: the store did not open: {e}");
            std::process::exit(2);
        }
    }
}

/// As `conformance::harness!`, with the known gaps of `gaps` (a file under `tests/`)
/// applied. A worker process serves `factory` and exits. Never returns.
pub fn run(factory: StoreFactory, gaps: &str) -> ! {
    let path = format!("{}/tests/{gaps}", env!("CARGO_MANIFEST_DIR"));
    let expectations = Expectations::load(path.as_ref()).unwrap_or_else(|e| {
        eprintln!("{gaps}: {e}");
        std::process::exit(2);
    });
    harness::main_with(env!("CARGO_PKG_NAME"), factory, expectations)
}
