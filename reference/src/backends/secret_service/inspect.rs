//! What a diagnostic tool asks the Secret Service: can the token cache be kept there now,
//! and if not, which of the causes a user can fix stands in the way; and which token cache
//! items it holds, without reading them out.
//!
//! The persistence reports the same causes as [`Error`](crate::Error)s of a kind, whose
//! messages tell them apart for people; a tool that explains each cause with its own fix
//! needs them as values, so this opens its own short-lived connection and asks step by
//! step: the bus, the name `org.freedesktop.secrets`, the default collection, its lock.

use std::{
    collections::HashMap,
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use secret_service::{
    EncryptionType,
    blocking::{Item, SecretService},
};

use super::{
    errors::SECRETS_NAME,
    payload,
    profile::{KeyringProfile, SCHEMA_ATTRIBUTE},
};

/// A diagnostic answers within seconds or says that it could not: a Secret Service that
/// takes longer than this for one call is itself the problem to report.
const METHOD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the Secret Service cannot hold the token cache now, one value per cause a user
/// fixes differently.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceProblem {
    /// No D-Bus bus at the address: none running (headless sessions, WSL, containers,
    /// SSH logins), a bad address, a refused handshake.
    NoBus {
        /// The address tried, or "the session bus".
        address: String,
        /// What the connection attempt reported.
        detail: String,
    },
    /// The bus works, but nothing owns `org.freedesktop.secrets` and nothing can be
    /// activated for it: no gnome-keyring (or KWallet, KeePassXC) running.
    NoService {
        /// The bus asked.
        address: String,
    },
    /// The Secret Service has no default collection (no login keyring yet).
    NoDefaultCollection,
    /// The default collection is locked; reading or writing it would need an unlock
    /// prompt.
    Locked {
        /// The collection's label, e.g. `Login`.
        collection: String,
    },
    /// Any other D-Bus or Secret Service failure.
    Failed {
        /// What failed; never contains a secret.
        detail: String,
    },
}

impl fmt::Display for ServiceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceProblem::NoBus { address, detail } => {
                write!(
                    f,
                    "no D-Bus session bus: could not connect to {address}: {detail}"
                )
            }
            ServiceProblem::NoService { address } => write!(
                f,
                "no Secret Service ({SECRETS_NAME}) on {address}: nothing owns or can activate it"
            ),
            ServiceProblem::NoDefaultCollection => {
                f.write_str("the Secret Service has no default collection (no login keyring)")
            }
            ServiceProblem::Locked { collection } => write!(
                f,
                "the Secret Service's default collection {collection:?} is locked"
            ),
            ServiceProblem::Failed { detail } => write!(f, "Secret Service error: {detail}"),
        }
    }
}

impl std::error::Error for ServiceProblem {}

/// A token cache item of one of the [`KeyringProfile`] layouts, as found by
/// [`cache_items`]. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheItem {
    /// The layout the item's attributes match.
    pub profile: KeyringProfile,
    /// The cache name the item is for: its `xdg:schema` in the Python layout (one item
    /// per name); the label of the last writer in the .NET layout (one item for every
    /// name); `None` in the keytar layout (one item for every name, no name stored).
    pub cache_name: Option<String>,
    /// The item's label.
    pub label: String,
    /// Whether the item (or its collection) is locked; size is unknown then.
    pub locked: bool,
    /// The size of the stored cache blob (decoded, for the .NET layout's Base64); `None`
    /// when locked or unreadable.
    pub size: Option<usize>,
    /// When the item was last changed, as the Secret Service records it.
    pub modified: Option<SystemTime>,
}

/// Whether the token cache can be kept in the Secret Service at `address` (`None`: the
/// session bus of the environment) now: `Ok` when a bus, a Secret Service on it and an
/// unlocked default collection are there, else the first missing one.
///
/// Reads and writes nothing; the write/read/delete probe is
/// [`SecretServicePersistence::validate`](super::SecretServicePersistence::validate).
pub fn check_service(address: Option<&str>) -> Result<(), ServiceProblem> {
    let service = connect(address)?;
    let collection = service.get_default_collection().map_err(|e| match e {
        secret_service::Error::NoResult => ServiceProblem::NoDefaultCollection,
        e => failed("find the default collection", &e),
    })?;
    let locked = collection
        .is_locked()
        .map_err(|e| failed("read the collection's Locked property", &e))?;
    if locked {
        let collection = collection
            .get_label()
            .unwrap_or_else(|_| "default".to_owned());
        return Err(ServiceProblem::Locked { collection });
    }
    Ok(())
}

/// Every token cache item of the [`KeyringProfile`] layouts in the Secret Service at
/// `address` (`None`: the session bus), in any collection, locked ones included.
///
/// Unlocked items' secrets are read to measure them, and dropped; nothing is unlocked
/// (that would prompt). The validation probe's items carry other attribute values and
/// are never listed.
pub fn cache_items(address: Option<&str>) -> Result<Vec<CacheItem>, ServiceProblem> {
    let service = connect(address)?;
    let dotnet = KeyringProfile::AzureIdentityDotNet
        .layout("msal.cache")
        .lookup;
    // The Python lookup without the schema, which is the cache name: every name's item.
    let mut python = KeyringProfile::AzureIdentityPython
        .layout("msal.cache")
        .lookup;
    python.remove(SCHEMA_ATTRIBUTE);
    let keytar = KeyringProfile::Keytar.layout("msal.cache").lookup;
    let mut items = Vec::new();
    for lookup in [&python, &keytar] {
        let query: HashMap<&str, &str> = lookup
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let found = service
            .search_items(query)
            .map_err(|e| failed("search the Secret Service", &e))?;
        for (item, locked) in found
            .unlocked
            .iter()
            .map(|i| (i, false))
            .chain(found.locked.iter().map(|i| (i, true)))
        {
            let attributes = item
                .get_attributes()
                .map_err(|e| failed("read an item's attributes", &e))?;
            let carries = |lookup: &std::collections::BTreeMap<String, String>| {
                lookup.iter().all(|(k, v)| attributes.get(k) == Some(v))
            };
            let profile = if carries(&keytar) {
                KeyringProfile::Keytar
            } else if carries(&dotnet) {
                KeyringProfile::AzureIdentityDotNet
            } else {
                KeyringProfile::AzureIdentityPython
            };
            items.push(describe(item, profile, &attributes, locked)?);
        }
    }
    Ok(items)
}

fn describe(
    item: &Item<'_>,
    profile: KeyringProfile,
    attributes: &HashMap<String, String>,
    locked: bool,
) -> Result<CacheItem, ServiceProblem> {
    let label = item
        .get_label()
        .map_err(|e| failed("read an item's label", &e))?;
    let cache_name = match profile {
        KeyringProfile::AzureIdentityDotNet => Some(label.clone()),
        KeyringProfile::Keytar => None,
        _ => attributes.get(SCHEMA_ATTRIBUTE).cloned(),
    };
    let size = if locked {
        None
    } else {
        item.get_secret()
            .ok()
            .and_then(|secret| payload::decode(profile.layout("").encoding, secret, "").ok())
            .map(|blob| blob.len())
    };
    let modified = item
        .get_modified()
        .ok()
        .filter(|secs| *secs > 0)
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    Ok(CacheItem {
        profile,
        cache_name,
        label,
        locked,
        size,
        modified,
    })
}

/// A Secret Service session on the bus at `address`, once a bus answers and the service
/// is there.
fn connect(address: Option<&str>) -> Result<SecretService<'static>, ServiceProblem> {
    let shown = address.unwrap_or("the session bus").to_owned();
    let no_bus = |detail: String| ServiceProblem::NoBus {
        address: shown.clone(),
        detail,
    };
    let builder = match address {
        None => zbus::blocking::connection::Builder::session(),
        Some(address) => zbus::blocking::connection::Builder::address(address),
    }
    .map_err(|e| no_bus(e.to_string()))?;
    let connection = builder
        .method_timeout(METHOD_TIMEOUT)
        .build()
        .map_err(|e| no_bus(e.to_string()))?;
    let dbus =
        zbus::blocking::fdo::DBusProxy::new(&connection).map_err(|e| no_bus(e.to_string()))?;
    let name = zbus::names::BusName::try_from(SECRETS_NAME).map_err(|e| no_bus(e.to_string()))?;
    let running = dbus
        .name_has_owner(name)
        .map_err(|e| no_bus(e.to_string()))?;
    if !running {
        let activatable = dbus
            .list_activatable_names()
            .map_err(|e| no_bus(e.to_string()))?
            .iter()
            .any(|n| n.as_str() == SECRETS_NAME);
        if !activatable {
            return Err(ServiceProblem::NoService { address: shown });
        }
    }
    SecretService::connect_with_existing(EncryptionType::Dh, connection)
        .map_err(|e| failed("open a Secret Service session", &e))
}

fn failed(action: &str, err: &secret_service::Error) -> ServiceProblem {
    ServiceProblem::Failed {
        detail: format!("could not {action}: {err}"),
    }
}
