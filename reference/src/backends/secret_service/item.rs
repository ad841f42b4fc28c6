//! [`SecretServiceItem`]: one Secret Service item as a [`SecretStore`], so that the
//! Secret Service backend is the one secure-store composition (secret, marker, lock,
//! probe) that the Keychain uses too.

use std::sync::Arc;

use super::{
    client::Connector,
    payload::{self, MAX_SIZE},
    profile::{ItemLayout, KeyringProfile},
};
use crate::{
    backends::platform::{SecretStore, StoreError},
    persistence::ChangeToken,
};

/// The item of one layout in the default collection, on one connection.
///
/// Its failures are this crate's errors already (the connector's "no D-Bus session bus:
/// …", "… is locked …", a secret that does not decode), so they reach the caller as they
/// are.
#[derive(Debug, Clone)]
pub(crate) struct SecretServiceItem {
    connector: Arc<Connector>,
    profile: KeyringProfile,
    layout: ItemLayout,
}

impl SecretServiceItem {
    pub(crate) fn new(
        connector: Arc<Connector>,
        profile: KeyringProfile,
        layout: ItemLayout,
    ) -> Self {
        SecretServiceItem {
            connector,
            profile,
            layout,
        }
    }

    /// The same item, reached over `connector`.
    pub(crate) fn on(&self, connector: Arc<Connector>) -> Self {
        SecretServiceItem {
            connector,
            ..self.clone()
        }
    }

    pub(crate) fn connector(&self) -> &Arc<Connector> {
        &self.connector
    }

    /// The item alone, for messages about its contents.
    fn item(&self) -> String {
        format!("Secret Service item {}", self.layout.describe())
    }
}

impl SecretStore for SecretServiceItem {
    fn backend(&self) -> &str {
        "secret-service"
    }

    fn location(&self) -> String {
        format!(
            "{} on {}, profile {}, default collection",
            self.item(),
            self.connector.address(),
            self.profile
        )
    }

    fn max_size(&self) -> Option<usize> {
        Some(MAX_SIZE)
    }

    fn get(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let secret = self
            .connector
            .with("read the token cache from the Secret Service", |client| {
                client.read(&self.layout)
            })?;
        Ok(secret
            .map(|s| payload::decode(self.layout.encoding, s, &self.item()))
            .transpose()?)
    }

    fn set(&self, secret: &[u8]) -> Result<(), StoreError> {
        let secret = payload::encode(self.layout.encoding, secret);
        Ok(self
            .connector
            .with("store the token cache in the Secret Service", |client| {
                client.store(&self.layout.label, &self.layout.attributes, &secret)
            })?)
    }

    fn delete(&self) -> Result<bool, StoreError> {
        Ok(self
            .connector
            .with("delete the token cache from the Secret Service", |client| {
                client.remove(&self.layout)
            })?)
    }

    /// One lookup, which reads no secret, tells whether an item exists; its object path
    /// is the token.
    fn unmarked_token(&self) -> Result<Option<ChangeToken>, StoreError> {
        let found = self
            .connector
            .with("look up the token cache in the Secret Service", |client| {
                client.find(&self.layout.lookup)
            })?;
        Ok(found
            .first()
            .map(|item| ChangeToken::new(format!("unmarked:{}", item.path.as_str()))))
    }
}
