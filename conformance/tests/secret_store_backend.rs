//! The whole suite against `SecretStorePersistence`, the platform-independent part of the
//! macOS Keychain backend, over a test store that keeps its one secret in a file outside
//! the namespace directory, as a keychain keeps items outside the cache directory
//! (`cargo test -p conformance --test secret_store_backend -- contract::`).
//!
//! Store faults are real file-system faults on the store's directory, provoked by the
//! file plugin's hooks: the directory replaced by a file (unreachable), made immutable
//! (refused), a full tmpfs over it (full).

use std::{
    ffi::OsString,
    fs,
    io::{self, Write},
    path::PathBuf,
};

use conformance::{Fault, FileFactory, Namespace, PluginFactory};
use identity_cache_persistence::{
    CachePersistence, Error, Result,
    platform::{SecretStore, SecretStorePersistence, StoreError, StoreFailure},
    validate_name,
};

/// One secret per cache name in `<dir>/secret-<hash of the name>`, replaced atomically
/// (temporary file, fsync, rename), so that several processes share it as they share a
/// keychain item. One item per name, as the Keychain's `KeychainAccount::CacheName`
/// layout keeps it: this target checks the composition, not an account layout. (The
/// default `Shared` layout is one item for every name, as JS and Python keep it: there
/// `names::long_common_prefix_isolated` cannot hold; see the README's platform table.)
#[derive(Debug, Clone)]
struct FileStore {
    dir: PathBuf,
    item: String,
}

impl FileStore {
    /// The store of a namespace: the directory `<ns.dir>.store`, beside the namespace.
    fn of(ns: &Namespace) -> Self {
        use std::hash::{Hash, Hasher};
        let mut dir = OsString::from(ns.dir.as_os_str());
        dir.push(".store");
        // `DefaultHasher::new()` has fixed keys: the worker processes of one test binary
        // agree on it. The name itself can be too long for a file name with a prefix.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        ns.name.hash(&mut hasher);
        FileStore {
            dir: dir.into(),
            item: format!("secret-{:016x}", hasher.finish()),
        }
    }

    fn item(&self) -> PathBuf {
        self.dir.join(&self.item)
    }

    fn write(&self, secret: &[u8]) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let temp = self.dir.join(format!(
            "{}.{}-{:016x}.tmp",
            self.item,
            std::process::id(),
            fastrand::u64(..)
        ));
        let written = fs::File::create(&temp)
            .and_then(|mut f| f.write_all(secret).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&temp, self.item()));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written
    }
}

/// How a store on files fails, in the store's terms.
fn store_error(err: io::Error) -> StoreError {
    let failure = match err.kind() {
        // A file where the store's directory should be.
        io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists => StoreFailure::Unavailable,
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => StoreFailure::Denied,
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StoreFailure::Full,
        _ => StoreFailure::Other,
    };
    StoreError::new(failure, err)
}

impl SecretStore for FileStore {
    fn backend(&self) -> &str {
        "secret-store"
    }

    fn location(&self) -> String {
        format!("test store {}", self.dir.display())
    }

    fn get(&self) -> std::result::Result<Option<Vec<u8>>, StoreError> {
        match fs::read(self.item()) {
            Ok(secret) => Ok(Some(secret)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    fn set(&self, secret: &[u8]) -> std::result::Result<(), StoreError> {
        self.write(secret).map_err(store_error)
    }

    fn delete(&self) -> std::result::Result<bool, StoreError> {
        match fs::remove_file(self.item()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    }
}

/// Makes a `SecretStorePersistence` with its marker at `<ns.dir>/<ns.name>` and its secret
/// in the namespace's [`FileStore`].
#[derive(Debug, Default)]
struct SecretStoreFactory {
    /// Provokes faults on the store's directory.
    files: FileFactory,
}

/// The store's directory as a namespace of the file plugin, for its fault hooks.
fn store_namespace(ns: &Namespace) -> Namespace {
    Namespace::new("secret", FileStore::of(ns).dir)
}

impl PluginFactory for SecretStoreFactory {
    fn label(&self) -> String {
        "secret-store (file-backed test store)".into()
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        validate_name(&ns.name)?;
        Ok(Box::new(SecretStorePersistence::new(
            ns.dir.join(&ns.name),
            FileStore::of(ns),
        )?))
    }

    fn cleanup(&self, ns: &Namespace) -> Result<()> {
        let store = FileStore::of(ns);
        if store.dir.exists() {
            // Undoes a fault a case left in force.
            self.files.cleanup(&store_namespace(ns))?;
        }
        self.create(ns)?.delete()?;
        match fs::remove_dir_all(&store.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(Error::io("remove", &store.dir, e))
            }
            _ => Ok(()),
        }
    }

    fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        let store = store_namespace(ns);
        fs::create_dir_all(&store.dir).map_err(|e| Error::io("create", &store.dir, e))?;
        self.files.inject_fault(&store, fault)
    }

    fn clear_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        self.files.clear_fault(&store_namespace(ns), fault)
    }
}

conformance::harness!(SecretStoreFactory::default);
