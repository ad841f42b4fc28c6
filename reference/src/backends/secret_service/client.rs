//! The lazily opened connection to the Secret Service, and the few item operations the
//! backend needs, each one or two D-Bus calls.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use secret_service::{EncryptionType, Error as SsError, blocking::SecretService};
use zbus::zvariant::OwnedObjectPath;

use super::{
    errors::{self, SECRETS_NAME},
    profile::ItemLayout,
};
use crate::error::Result;

/// How long one D-Bus call may take before it fails. The Secret Service answers in
/// milliseconds, a 32 MiB item in about a second; a peer that does not answer in this
/// long is not coming back, and waiting forever would hang the caller's token request.
const METHOD_TIMEOUT: Duration = Duration::from_secs(60);

/// The content type libsecret's `secret_password_store_sync` gives every secret, which
/// its `secret_password_lookup_sync` accepts whatever the bytes are. (For other types it
/// returns nothing unless the bytes are valid UTF-8.)
const CONTENT_TYPE: &str = "text/plain";

/// Which bus to connect to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum BusAddress {
    /// The session bus, found as D-Bus clients do: `DBUS_SESSION_BUS_ADDRESS`, else
    /// `$XDG_RUNTIME_DIR/bus`.
    #[default]
    Session,
    /// An explicit D-Bus address such as `unix:path=/run/user/1000/bus`.
    Explicit(String),
}

impl fmt::Display for BusAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusAddress::Session => f.write_str("the session bus"),
            BusAddress::Explicit(address) => f.write_str(address),
        }
    }
}

/// A connection opened on first use, shared by the clones of one persistence, and
/// reopened after it breaks.
pub(crate) struct Connector {
    address: BusAddress,
    client: Mutex<Option<Arc<Client>>>,
}

/// An open session with the Secret Service.
pub(crate) struct Client {
    service: SecretService<'static>,
    /// The object path of the collection aliased `default`, where items are stored;
    /// read once per connection.
    collection: OwnedObjectPath,
}

/// An item found by a lookup.
pub(crate) struct Found {
    pub path: OwnedObjectPath,
    pub locked: bool,
}

impl Connector {
    /// A connector to `address`. Touches nothing.
    pub(crate) fn new(address: BusAddress) -> Self {
        Connector {
            address,
            client: Mutex::new(None),
        }
    }

    pub(crate) fn address(&self) -> &BusAddress {
        &self.address
    }

    /// Runs `op` on the connection, opening it first if needed. When `op` fails because
    /// the connection is unusable, the connection is dropped so that the next call opens
    /// a new one.
    ///
    /// A connection that was already open and turns out broken (the daemon restarted, the
    /// bus dropped it) is replaced and `op` run once more on the new one: every operation
    /// of this backend is idempotent (a store replaces, a delete of a missing item is not
    /// an error), so running it twice is safe.
    pub(crate) fn with<T>(
        &self,
        action: &str,
        op: impl Fn(&Client) -> std::result::Result<T, SsError>,
    ) -> Result<T> {
        let (client, fresh) = self.client()?;
        match op(&client) {
            Err(err) if errors::connection_is_broken(&err) => {
                self.forget(&client);
                if fresh {
                    return Err(errors::from_secret_service(action, err));
                }
                let (client, _) = self.client()?;
                op(&client).map_err(|err| {
                    if errors::connection_is_broken(&err) {
                        self.forget(&client);
                    }
                    errors::from_secret_service(action, err)
                })
            }
            result => result.map_err(|err| errors::from_secret_service(action, err)),
        }
    }

    /// Drops `client` from the slot, unless another thread has replaced it already.
    fn forget(&self, client: &Arc<Client>) {
        let mut slot = self.slot();
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, client)) {
            *slot = None;
        }
    }

    /// The open connection, and whether it was opened just now.
    fn client(&self) -> Result<(Arc<Client>, bool)> {
        let mut slot = self.slot();
        if let Some(client) = slot.as_ref() {
            return Ok((Arc::clone(client), false));
        }
        // Connecting under the slot's lock: concurrent first calls share one connection
        // instead of each opening their own.
        let client = Arc::new(self.connect()?);
        *slot = Some(Arc::clone(&client));
        Ok((client, true))
    }

    fn slot(&self) -> MutexGuard<'_, Option<Arc<Client>>> {
        // The slot only ever holds a complete connection or none: safe after a panic.
        self.client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn connect(&self) -> Result<Client> {
        let shown = self.address.to_string();
        let builder = match &self.address {
            BusAddress::Session => zbus::blocking::connection::Builder::session(),
            BusAddress::Explicit(address) => {
                zbus::blocking::connection::Builder::address(address.as_str())
            }
        }
        .map_err(|e| errors::no_bus(&shown, e))?;
        let connection = builder
            .method_timeout(METHOD_TIMEOUT)
            .build()
            .map_err(|e| errors::no_bus(&shown, e))?;
        // Ask first instead of letting OpenSession fail: "not activatable" and "not
        // running" read the same to a user, and both mean there is no Secret Service.
        let dbus = zbus::blocking::fdo::DBusProxy::new(&connection)
            .map_err(|e| errors::no_bus(&shown, e))?;
        let name = zbus::names::BusName::try_from(SECRETS_NAME)
            .map_err(|e| errors::no_bus(&shown, e.into()))?;
        let running = dbus
            .name_has_owner(name.clone())
            .map_err(|e| errors::no_bus(&shown, e.into()))?;
        if !running {
            let activatable = dbus
                .list_activatable_names()
                .map_err(|e| errors::no_bus(&shown, e.into()))?
                .iter()
                .any(|n| n.as_str() == SECRETS_NAME);
            if !activatable {
                return Err(errors::no_secret_service(&format!(
                    "nothing owns or can activate {SECRETS_NAME} on {shown}"
                )));
            }
        }
        // Diffie-Hellman session: the secret is encrypted on the bus, as libsecret does.
        let service = SecretService::connect_with_existing(EncryptionType::Dh, connection)
            .map_err(|e| errors::from_secret_service("open a Secret Service session", e))?;
        let collection = service
            .get_default_collection()
            .map(|c| c.collection_path.clone())
            .map_err(|e| match e {
                SsError::NoResult => errors::no_secret_service(
                    "the Secret Service has no default collection (no login keyring)",
                ),
                e => errors::from_secret_service("find the default collection", e),
            })?;
        Ok(Client {
            service,
            collection,
        })
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("address", &self.address)
            .field("connected", &self.slot().is_some())
            .finish()
    }
}

impl Client {
    /// The items of the default collection that carry all of `lookup`, unlocked first.
    /// Items of other collections are ignored: saves write to the default collection,
    /// so only its items can be the cache.
    pub(crate) fn find(
        &self,
        lookup: &BTreeMap<String, String>,
    ) -> std::result::Result<Vec<Found>, SsError> {
        let result = self.service.search_items(borrow(lookup))?;
        let prefix = format!("{}/", self.collection.as_str());
        let mine = |item: &secret_service::blocking::Item<'_>| {
            item.item_path.as_str().starts_with(&prefix)
        };
        let unlocked = result.unlocked.iter().filter(|i| mine(i)).map(|i| Found {
            path: i.item_path.clone(),
            locked: false,
        });
        let locked = result.locked.iter().filter(|i| mine(i)).map(|i| Found {
            path: i.item_path.clone(),
            locked: true,
        });
        Ok(unlocked.chain(locked).collect())
    }

    /// The secret of the item at `path`.
    pub(crate) fn secret(&self, path: &OwnedObjectPath) -> std::result::Result<Vec<u8>, SsError> {
        self.service.get_item_by_path(path.clone())?.get_secret()
    }

    /// The attributes of the item at `path`.
    pub(crate) fn attributes(
        &self,
        path: &OwnedObjectPath,
    ) -> std::result::Result<HashMap<String, String>, SsError> {
        self.service
            .get_item_by_path(path.clone())?
            .get_attributes()
    }

    /// Creates the item with exactly `attributes` in the default collection, or replaces
    /// the secret and label of the one that has them: one `CreateItem` call with
    /// `replace`, which the Secret Service applies at once.
    pub(crate) fn store(
        &self,
        label: &str,
        attributes: &BTreeMap<String, String>,
        secret: &[u8],
    ) -> std::result::Result<(), SsError> {
        let collection = self
            .service
            .get_collection_by_path(self.collection.clone())?;
        collection.create_item(label, borrow(attributes), secret, true, CONTENT_TYPE)?;
        Ok(())
    }

    /// Deletes the item at `path`.
    pub(crate) fn delete(&self, path: &OwnedObjectPath) -> std::result::Result<(), SsError> {
        self.service.get_item_by_path(path.clone())?.delete()
    }
}

impl Client {
    /// The secret of the item `layout` names, as stored (still encoded); `None` when
    /// there is none.
    ///
    /// - Several items match: the one whose attributes are exactly the layout's (the one
    ///   [`store`](Self::store) replaces), else the first unlocked one.
    /// - Only locked items match: [`SsError::Locked`]; nothing is unlocked, since that
    ///   would pop up a prompt, which without a display fails and with one blocks.
    /// - The item is deleted between the search and the read: searched again.
    pub(crate) fn read(
        &self,
        layout: &ItemLayout,
    ) -> std::result::Result<Option<Vec<u8>>, SsError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let found = self.find(&layout.lookup)?;
            let Some(item) = self.choose(&found, layout)? else {
                return Ok(None);
            };
            if item.locked {
                return Err(SsError::Locked);
            }
            match self.secret(&item.path) {
                Err(e) if errors::object_is_gone(&e) && attempts < 3 => continue,
                result => return result.map(Some),
            }
        }
    }

    /// Deletes every item of the default collection that `layout`'s lookup matches, as
    /// libsecret's `secret_password_clear_sync` does; whether there was one.
    ///
    /// A locked match fails the whole call with [`SsError::Locked`] before anything is
    /// deleted.
    pub(crate) fn remove(&self, layout: &ItemLayout) -> std::result::Result<bool, SsError> {
        let found = self.find(&layout.lookup)?;
        if found.iter().any(|f| f.locked) {
            return Err(SsError::Locked);
        }
        for item in &found {
            match self.delete(&item.path) {
                // Someone else deleted it first: it is gone either way.
                Err(e) if errors::object_is_gone(&e) => {}
                result => result?,
            }
        }
        Ok(!found.is_empty())
    }

    fn choose<'f>(
        &self,
        found: &'f [Found],
        layout: &ItemLayout,
    ) -> std::result::Result<Option<&'f Found>, SsError> {
        let unlocked: Vec<&Found> = found.iter().filter(|f| !f.locked).collect();
        if unlocked.len() > 1 {
            for candidate in &unlocked {
                let attributes = self.attributes(&candidate.path)?;
                let exact = attributes.len() == layout.attributes.len()
                    && layout
                        .attributes
                        .iter()
                        .all(|(k, v)| attributes.get(k) == Some(v));
                if exact {
                    return Ok(Some(candidate));
                }
            }
        }
        Ok(unlocked.first().copied().or(found.first()))
    }
}

fn borrow(map: &BTreeMap<String, String>) -> HashMap<&str, &str> {
    map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}
