//! [`KeyringProfile`]: which Secret Service item a cache is, in the layout another SDK
//! writes, so that the SDKs share one cache.
//!
//! Pure data with no D-Bus in it, so it is compiled and tested on every platform.

use std::{collections::BTreeMap, fmt};

/// The attribute `xdg:schema`, which libsecret writes on every item it stores: the schema
/// name. Libsecret lookups match it unless the schema was made with
/// `SECRET_SCHEMA_DONT_MATCH_NAME`.
pub const SCHEMA_ATTRIBUTE: &str = "xdg:schema";

/// The service name every Azure SDK uses for its token cache item.
const SERVICE: &str = "Microsoft.Developer.IdentityService";

/// The Secret Service item layout of a token cache: the attributes that identify it, its
/// label and how the blob is encoded, matching what one of the Azure SDKs writes.
///
/// Items go in the default collection (alias `default`). Each layout is the one its SDK
/// writes through libsecret's `secret_password_store_sync`, including the `xdg:schema`
/// attribute libsecret adds, so that a save by either side replaces the other's item
/// instead of adding a second one.
///
/// | profile | `xdg:schema` | other attributes | label | payload | one item per cache name |
/// |---|---|---|---|---|---|
/// | [`AzureIdentityPython`](Self::AzureIdentityPython) (default) | the cache name | `MsalClientID=Microsoft.Developer.IdentityService` | `MSALCache` | raw | yes |
/// | [`AzureIdentityDotNet`](Self::AzureIdentityDotNet) | `msal.cache` | `MsalClientID=Microsoft.Developer.IdentityService`, `Microsoft.Developer.IdentityService=1.0.0.0` | the cache name | Base64 | no: every name shares one item |
/// | [`Keytar`](Self::Keytar) | `org.freedesktop.Secret.Generic` | `service=Microsoft.Developer.IdentityService`, `account=MSALCache` | `Microsoft.Developer.IdentityService/MSALCache` | raw | no: every name shares one item |
///
/// The Python profile is the default: it is the only one of the three in which the cache
/// name (and so `.cae`/`.nocae`) selects its own item, it stores the blob as it is, and
/// Azure CLI and the Python SDK, the most common writers of `~/.IdentityService` caches on
/// Linux, use it.
///
/// The change marker is the file at the cache path in every profile. The SDKs touch theirs
/// at `~/.IdentityService/<name>`, except .NET, whose directory on Linux is
/// `~/.local/share/.IdentityService`: to see .NET's saves as changes, point the cache
/// directory there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyringProfile {
    /// Python `azure-identity` through `msal-extensions`' `LibsecretPersistence`
    /// (`azure/identity/_persistent_cache.py`): schema = cache name, one attribute, label
    /// `MSALCache`, the blob as it is.
    #[default]
    AzureIdentityPython,
    /// .NET `Azure.Identity` through MSAL.NET's `LinuxKeyringAccessor`: schema
    /// `msal.cache` (looked up without it, `SECRET_SCHEMA_DONT_MATCH_NAME`), two
    /// attributes, label = cache name, the blob Base64-encoded.
    AzureIdentityDotNet,
    /// JS `@azure/identity-cache-persistence` through msal-node-extensions and keytar:
    /// schema `org.freedesktop.Secret.Generic`, `service` and `account`, the blob as it is.
    Keytar,
}

/// How the blob is stored in the item's secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// The bytes as they are.
    Raw,
    /// Standard Base64 with padding, as .NET's `Convert.ToBase64String`.
    Base64,
}

/// One item's identity: what is written, what is searched for, its label and encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemLayout {
    /// Every attribute written on the item, `xdg:schema` included.
    pub attributes: BTreeMap<String, String>,
    /// The attributes a lookup matches (a subset of `attributes`): the SDK's own lookup.
    pub lookup: BTreeMap<String, String>,
    /// The item's label.
    pub label: String,
    /// How the blob is encoded in the secret.
    pub encoding: Encoding,
}

impl KeyringProfile {
    /// Every profile, the default first.
    pub const ALL: [KeyringProfile; 3] = [
        KeyringProfile::AzureIdentityPython,
        KeyringProfile::AzureIdentityDotNet,
        KeyringProfile::Keytar,
    ];

    /// A stable short name: `azure-identity-python`, `azure-identity-dotnet`, `keytar`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyringProfile::AzureIdentityPython => "azure-identity-python",
            KeyringProfile::AzureIdentityDotNet => "azure-identity-dotnet",
            KeyringProfile::Keytar => "keytar",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn from_name(name: &str) -> Option<KeyringProfile> {
        KeyringProfile::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Every attribute of the item holding the cache `cache_name`, `xdg:schema` included.
    pub fn attributes(self, cache_name: &str) -> BTreeMap<String, String> {
        self.layout(cache_name).attributes
    }

    /// The label of the item holding the cache `cache_name`.
    pub fn label(self, cache_name: &str) -> String {
        self.layout(cache_name).label
    }

    /// The item of the cache `cache_name`.
    pub(crate) fn layout(self, cache_name: &str) -> ItemLayout {
        match self {
            KeyringProfile::AzureIdentityPython => {
                let attributes = map([(SCHEMA_ATTRIBUTE, cache_name), ("MsalClientID", SERVICE)]);
                ItemLayout {
                    lookup: attributes.clone(),
                    attributes,
                    label: "MSALCache".to_owned(),
                    encoding: Encoding::Raw,
                }
            }
            KeyringProfile::AzureIdentityDotNet => ItemLayout {
                attributes: map([
                    (SCHEMA_ATTRIBUTE, "msal.cache"),
                    ("MsalClientID", SERVICE),
                    (SERVICE, "1.0.0.0"),
                ]),
                // DONT_MATCH_NAME: .NET finds its item by the two attributes alone.
                lookup: map([("MsalClientID", SERVICE), (SERVICE, "1.0.0.0")]),
                label: cache_name.to_owned(),
                encoding: Encoding::Base64,
            },
            KeyringProfile::Keytar => {
                let attributes = map([
                    (SCHEMA_ATTRIBUTE, "org.freedesktop.Secret.Generic"),
                    ("service", SERVICE),
                    ("account", "MSALCache"),
                ]);
                ItemLayout {
                    lookup: attributes.clone(),
                    attributes,
                    label: format!("{SERVICE}/MSALCache"),
                    encoding: Encoding::Raw,
                }
            }
        }
    }

    /// The separate item the validation probe writes, reads and deletes.
    ///
    /// Same schema and attribute names as the cache item, so it exercises the same path
    /// through the Secret Service, but every other attribute value is `token`: no SDK's
    /// lookup of a real cache matches it (a lookup matches items carrying all of its
    /// attributes, so an *extra* attribute would not be enough), and with a `token` unique
    /// to each probe, concurrent probes of several processes do not delete each other's
    /// item. The label is the one MSAL.NET gives its own probe item.
    #[cfg(all(target_os = "linux", feature = "secret-service"))]
    pub(crate) fn validation_layout(self, cache_name: &str, token: &str) -> ItemLayout {
        let mut layout = self.layout(cache_name);
        for map in [&mut layout.attributes, &mut layout.lookup] {
            for (key, value) in map.iter_mut() {
                if key != SCHEMA_ATTRIBUTE {
                    *value = token.to_owned();
                }
            }
        }
        layout.label = "MSAL Persistence Test".to_owned();
        layout
    }
}

impl fmt::Display for KeyringProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ItemLayout {
    /// `key=value, …` of the lookup attributes and the label, for messages and
    /// [`Description::location`](crate::Description).
    #[cfg(all(target_os = "linux", feature = "secret-service"))]
    pub(crate) fn describe(&self) -> String {
        let attributes: Vec<String> = self
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{}; label {:?}", attributes.join(", "), self.label)
    }
}

fn map<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(map: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
        map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn python_profile_is_the_default_and_partitions_by_name() {
        assert_eq!(
            KeyringProfile::default(),
            KeyringProfile::AzureIdentityPython
        );
        let layout = KeyringProfile::AzureIdentityPython.layout("msal.cache.nocae");
        assert_eq!(
            pairs(&layout.attributes),
            [
                ("MsalClientID", "Microsoft.Developer.IdentityService"),
                ("xdg:schema", "msal.cache.nocae"),
            ]
        );
        assert_eq!(layout.lookup, layout.attributes);
        assert_eq!(layout.label, "MSALCache");
        assert_eq!(layout.encoding, Encoding::Raw);
        assert_ne!(
            KeyringProfile::AzureIdentityPython.attributes("msal.cache.cae"),
            layout.attributes
        );
    }

    #[test]
    fn dotnet_profile_matches_msal_dotnet() {
        let layout = KeyringProfile::AzureIdentityDotNet.layout("msal.cache.nocae");
        assert_eq!(
            pairs(&layout.attributes),
            [
                ("Microsoft.Developer.IdentityService", "1.0.0.0"),
                ("MsalClientID", "Microsoft.Developer.IdentityService"),
                ("xdg:schema", "msal.cache"),
            ]
        );
        assert_eq!(
            pairs(&layout.lookup),
            [
                ("Microsoft.Developer.IdentityService", "1.0.0.0"),
                ("MsalClientID", "Microsoft.Developer.IdentityService"),
            ]
        );
        assert_eq!(layout.label, "msal.cache.nocae");
        assert_eq!(layout.encoding, Encoding::Base64);
    }

    #[test]
    fn keytar_profile_matches_keytar() {
        let layout = KeyringProfile::Keytar.layout("anything");
        assert_eq!(
            pairs(&layout.attributes),
            [
                ("account", "MSALCache"),
                ("service", "Microsoft.Developer.IdentityService"),
                ("xdg:schema", "org.freedesktop.Secret.Generic"),
            ]
        );
        assert_eq!(layout.lookup, layout.attributes);
        assert_eq!(
            layout.label,
            "Microsoft.Developer.IdentityService/MSALCache"
        );
        assert_eq!(layout.encoding, Encoding::Raw);
    }

    #[test]
    #[cfg(all(target_os = "linux", feature = "secret-service"))]
    fn validation_items_never_match_a_cache_lookup() {
        for profile in KeyringProfile::ALL {
            let real = profile.layout("msal.cache");
            let probe = profile.validation_layout("msal.cache", "validation 1-abc");
            assert_eq!(probe.label, "MSAL Persistence Test");
            assert_eq!(
                probe.attributes.keys().collect::<Vec<_>>(),
                real.attributes.keys().collect::<Vec<_>>(),
                "{profile}: same attribute names"
            );
            // A lookup matches an item that carries every lookup attribute.
            let matches = |lookup: &BTreeMap<String, String>, item: &BTreeMap<String, String>| {
                lookup.iter().all(|(k, v)| item.get(k) == Some(v))
            };
            for other in KeyringProfile::ALL {
                assert!(
                    !matches(&other.layout("msal.cache").lookup, &probe.attributes),
                    "{other}'s lookup matches {profile}'s probe item"
                );
            }
            assert!(matches(&probe.lookup, &probe.attributes));
            let other_probe = profile.validation_layout("msal.cache", "validation 2-def");
            assert!(!matches(&other_probe.lookup, &probe.attributes));
        }
    }

    #[test]
    fn names_round_trip() {
        for profile in KeyringProfile::ALL {
            assert_eq!(KeyringProfile::from_name(profile.as_str()), Some(profile));
        }
        assert_eq!(KeyringProfile::from_name("gnome"), None);
    }
}
