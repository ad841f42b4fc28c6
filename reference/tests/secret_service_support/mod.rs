//! The private Secret Service of the tests ([`daemons`]), and what the tests ask it
//! through the Secret Service API: lock the collection, list and search items.

#![allow(dead_code)]

mod daemons;

pub use daemons::*;

impl PrivateKeyring {
    /// Locks the default collection through the Secret Service API (`Service.Lock`), as
    /// a screen locker or `secret-tool lock` would.
    pub fn lock_default_collection(&self) {
        let service = secret_service::blocking::SecretService::connect_with_existing(
            secret_service::EncryptionType::Plain,
            self.connect(),
        )
        .expect("Secret Service session");
        let collection = service
            .get_default_collection()
            .expect("default collection");
        collection.lock().expect("Service.Lock");
        assert!(collection.is_locked().expect("Locked property"));
    }

    /// The unlocked items carrying all of `attributes` (a Secret Service search, as
    /// libsecret does it), each with its label, every attribute and its secret as text.
    /// Read through the API rather than `secret-tool search`, which prints the
    /// attributes on stderr and the rest on stdout.
    pub fn search(&self, attributes: &[(&str, &str)]) -> Vec<FoundItem> {
        let service = secret_service::blocking::SecretService::connect_with_existing(
            secret_service::EncryptionType::Dh,
            self.connect(),
        )
        .expect("Secret Service session");
        let found = service
            .search_items(attributes.iter().copied().collect())
            .expect("SearchItems");
        found
            .unlocked
            .iter()
            .map(|item| FoundItem {
                label: item.get_label().expect("label"),
                attributes: item
                    .get_attributes()
                    .expect("attributes")
                    .into_iter()
                    .collect(),
                secret: String::from_utf8_lossy(&item.get_secret().expect("secret")).into_owned(),
            })
            .collect()
    }

    /// Every item of the default collection: its path and attributes.
    pub fn all_items(&self) -> Vec<(String, std::collections::HashMap<String, String>)> {
        let service = secret_service::blocking::SecretService::connect_with_existing(
            secret_service::EncryptionType::Plain,
            self.connect(),
        )
        .expect("Secret Service session");
        let collection = service
            .get_default_collection()
            .expect("default collection");
        collection
            .get_all_items()
            .expect("items")
            .iter()
            .map(|item| {
                (
                    item.item_path.to_string(),
                    item.get_attributes().expect("attributes"),
                )
            })
            .collect()
    }
}

/// One item found by [`PrivateKeyring::search`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoundItem {
    pub label: String,
    pub attributes: std::collections::BTreeMap<String, String>,
    pub secret: String,
}
