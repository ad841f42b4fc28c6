//! The validation probe, as MSAL's `verifyPersistence`: write, read back and delete a
//! separate item, and report why that failed.

use super::{client::Connector, payload, profile::KeyringProfile};
use crate::error::{Error, ErrorKind, Result};

/// Stores, reads back and deletes the probe item of `profile` for `cache_name`; see
/// [`SecretServicePersistence::validate`](super::SecretServicePersistence::validate).
pub(crate) fn validate(
    connector: &Connector,
    profile: KeyringProfile,
    cache_name: &str,
) -> Result<()> {
    let token = format!(
        "persistence validation {}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    );
    let layout = profile.validation_layout(cache_name, &token);
    let data = format!("identity-cache-persistence validation {token}");
    let secret = payload::encode(layout.encoding, data.as_bytes());
    connector.with(
        "store the validation item in the Secret Service",
        |client| client.store(&layout.label, &layout.attributes, &secret),
    )?;
    let read = connector.with("read back the validation item", |client| {
        client.read(&layout)
    });
    // Deleted whatever the read gave: the probe leaves nothing behind.
    let removed = connector.with("delete the validation item", |client| {
        client.remove(&layout)
    });
    match read? {
        Some(found) if found == *secret => {}
        Some(_) => {
            return Err(Error::new(
                ErrorKind::Other,
                "the Secret Service returned different data for the validation item than was stored",
            ));
        }
        None => {
            return Err(Error::new(
                ErrorKind::Other,
                "the Secret Service accepted the validation item but then did not find it",
            ));
        }
    }
    removed.map(|_| ())
}
