//! The conformance factory of the Secret Service backend on a given D-Bus address, shared
//! by the suite on a private keyring on this host (`secret_service.rs`) and in a container
//! (`container_secret_service.rs`).

use conformance::{
    Namespace, PluginFactory,
    protocol::{is_worker, serve_worker_if_requested},
};
use identity_cache_persistence::{
    CachePersistence, KeyringProfile, Result, SecretServicePersistence, validate_name,
};

/// The backend in its default profile (Python azure-identity: one item per cache name,
/// so the suite's namespaces do not share an item) on the bus at `address`; its marker
/// files go in the namespace directory.
#[derive(Debug)]
pub struct BusFactory {
    /// The D-Bus address of the Secret Service.
    pub address: String,
    /// Where that bus is, for the label: "on a private gnome-keyring", "in a container".
    pub place: &'static str,
}

impl PluginFactory for BusFactory {
    fn label(&self) -> String {
        format!("secret-service {} at {}", self.place, self.address)
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        validate_name(&ns.name)?;
        Ok(Box::new(
            SecretServicePersistence::new(ns.dir.join(&ns.name), KeyringProfile::default())?
                .with_bus_address(&self.address),
        ))
    }
}

/// In a worker process of the multi-process cases, serves the parent's bus, whose
/// address the parent put in `bus_env`, and exits; elsewhere returns.
pub fn serve_worker_if_asked(bus_env: &str, place: &'static str) {
    if !is_worker() {
        return;
    }
    let Ok(address) = std::env::var(bus_env) else {
        eprintln!("secret-service worker: {bus_env} is not set");
        std::process::exit(2);
    };
    serve_worker_if_requested(&BusFactory { address, place });
    unreachable!("serve_worker_if_requested exits in a worker");
}
