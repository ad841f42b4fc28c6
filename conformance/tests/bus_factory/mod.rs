//! The conformance factory of the Secret Service backend on a given D-Bus address, shared
//! by the suite on a private keyring on this host (`secret_service.rs`) and in a container
//! (`container_secret_service.rs`).
//!
//! On the private keyring the factory also provokes real faults, each confined to one
//! namespace so that the cases running beside it are not touched:
//! - **storage unavailable**: the namespace's [`BusRelay`] is cut, so its handles lose the
//!   bus (loads, saves and deletes all fail);
//! - **access denied** and **disk full**: [`DirFaults`] on the namespace directory, where
//!   the marker file and the lock file are (immutable; a full tmpfs without a free inode).

mod relay;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
};

use conformance::{
    DirFaults, Fault, Namespace, PluginFactory,
    protocol::{is_worker, serve_worker_if_requested},
};
use identity_cache_persistence::{
    CachePersistence, Error, ErrorKind, KeyringProfile, Result, SecretServicePersistence,
    validate_name,
};
use relay::BusRelay;

/// The backend in its default profile (Python azure-identity: one item per cache name,
/// so the suite's namespaces do not share an item) on the bus at `address`; its marker
/// files go in the namespace directory.
#[derive(Debug)]
pub struct BusFactory {
    address: String,
    place: &'static str,
    faults: Option<Faults>,
}

/// What the fault hooks need: a relay per namespace, and the directory faults.
#[derive(Debug)]
struct Faults {
    /// The bus socket the relays lead to.
    bus: PathBuf,
    /// Where the relays' sockets are: a short path, since a Unix socket path has at most
    /// 107 bytes.
    sockets: tempfile::TempDir,
    relays: Mutex<HashMap<(PathBuf, String), BusRelay>>,
    /// Relays started so far: names each socket once.
    started: AtomicUsize,
    dirs: DirFaults,
}

impl BusFactory {
    /// The backend on the bus at `address`, `place` saying where it is for the label
    /// ("on a private gnome-keyring", "in a container"). No fault hooks.
    pub fn new(address: impl Into<String>, place: &'static str) -> Self {
        BusFactory {
            address: address.into(),
            place,
            faults: None,
        }
    }

    /// With the fault hooks: the address must be `unix:path=…` (a bus on this host).
    pub fn with_faults(self) -> std::io::Result<Self> {
        let bus = unix_path(&self.address).ok_or_else(|| {
            std::io::Error::other(format!("{} is not a unix:path= address", self.address))
        })?;
        let sockets = tempfile::Builder::new().prefix("ssr").tempdir_in("/tmp")?;
        Ok(BusFactory {
            faults: Some(Faults {
                bus,
                sockets,
                relays: Mutex::new(HashMap::new()),
                started: AtomicUsize::new(0),
                dirs: DirFaults::new().exhausting_inodes(),
            }),
            ..self
        })
    }

    /// The address the handles of `ns` use: their relay's, when there are fault hooks.
    fn address_for(&self, ns: &Namespace) -> Result<String> {
        let Some(faults) = &self.faults else {
            return Ok(self.address.clone());
        };
        let mut relays = faults.relays();
        let key = slot(ns);
        if let Some(relay) = relays.get(&key) {
            return Ok(relay.address());
        }
        let socket = faults.sockets.path().join(format!(
            "{}.sock",
            faults.started.fetch_add(1, Ordering::Relaxed)
        ));
        let relay = BusRelay::start(socket.clone(), faults.bus.clone())
            .map_err(|e| Error::io("start a bus relay at", &socket, e))?;
        let address = relay.address();
        relays.insert(key, relay);
        Ok(address)
    }

    fn faults(&self, fault: Fault) -> Result<&Faults> {
        self.faults.as_ref().ok_or_else(|| {
            Error::not_supported(
                &self.label(),
                &format!(
                    "inject_fault({}) on a keyring outside this host",
                    fault.as_str()
                ),
            )
        })
    }
}

impl Faults {
    fn relays(&self) -> MutexGuard<'_, HashMap<(PathBuf, String), BusRelay>> {
        self.relays.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts or restores the relay of `ns`.
    fn set_cut(&self, ns: &Namespace, cut: bool) -> Result<()> {
        let relays = self.relays();
        let relay = relays
            .get(&slot(ns))
            .ok_or_else(|| Error::new(ErrorKind::Other, "no handle was made for this namespace"))?;
        if cut {
            relay.cut();
        } else {
            relay.restore();
        }
        Ok(())
    }
}

/// The relay key of `ns`: equal namespaces share one relay.
fn slot(ns: &Namespace) -> (PathBuf, String) {
    (ns.dir.clone(), ns.name.clone())
}

fn unix_path(address: &str) -> Option<PathBuf> {
    let rest = address.strip_prefix("unix:path=")?;
    Some(PathBuf::from(rest.split(',').next()?))
}

impl PluginFactory for BusFactory {
    fn label(&self) -> String {
        format!("secret-service {} at {}", self.place, self.address)
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        validate_name(&ns.name)?;
        Ok(Box::new(
            SecretServicePersistence::new(ns.dir.join(&ns.name), KeyringProfile::default())?
                .with_bus_address(self.address_for(ns)?),
        ))
    }

    fn cleanup(&self, ns: &Namespace) -> Result<()> {
        if let Some(faults) = &self.faults {
            faults.dirs.clear_any(&ns.dir)?;
            if faults.relays().contains_key(&slot(ns)) {
                faults.set_cut(ns, false)?;
            }
        }
        let deleted = self.create(ns)?.delete().map(|_| ());
        if let Some(faults) = &self.faults {
            faults.relays().remove(&slot(ns));
        }
        deleted
    }

    fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        let faults = self.faults(fault)?;
        match fault {
            Fault::StorageUnavailable => faults.set_cut(ns, true),
            _ => faults.dirs.inject(&ns.dir, fault),
        }
    }

    fn clear_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        let faults = self.faults(fault)?;
        match fault {
            Fault::StorageUnavailable => faults.set_cut(ns, false),
            _ => faults.dirs.clear(&ns.dir, fault),
        }
    }
}

/// In a worker process of the multi-process cases, serves the parent's bus, whose
/// address the parent put in `bus_env`, and exits; elsewhere returns. Workers reach the
/// bus directly: faults are provoked only by the parent.
pub fn serve_worker_if_asked(bus_env: &str, place: &'static str) {
    if !is_worker() {
        return;
    }
    let Ok(address) = std::env::var(bus_env) else {
        eprintln!("secret-service worker: {bus_env} is not set");
        std::process::exit(2);
    };
    serve_worker_if_requested(&BusFactory::new(address, place));
    unreachable!("serve_worker_if_requested exits in a worker");
}
