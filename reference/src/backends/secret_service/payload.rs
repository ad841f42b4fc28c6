//! The blob as the item's secret: as it is, or Base64 for the .NET profile.

use std::borrow::Cow;

use base64::Engine as _;

use super::profile::Encoding;
use crate::error::{Error, ErrorKind, Result};

/// The secret that stores `data`.
pub(crate) fn encode(encoding: Encoding, data: &[u8]) -> Cow<'_, [u8]> {
    match encoding {
        Encoding::Raw => Cow::Borrowed(data),
        Encoding::Base64 => Cow::Owned(
            base64::engine::general_purpose::STANDARD
                .encode(data)
                .into_bytes(),
        ),
    }
}

/// The blob a secret stores.
///
/// Fails with [`CorruptData`](ErrorKind::CorruptData) when a Base64 secret is not Base64;
/// the message does not quote it, since it may be a token.
pub(crate) fn decode(encoding: Encoding, secret: Vec<u8>, location: &str) -> Result<Vec<u8>> {
    match encoding {
        Encoding::Raw => Ok(secret),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(&secret)
            // The decoder's own error quotes the offending byte: not kept, it is secret.
            .map_err(|_| {
                Error::new(
                    ErrorKind::CorruptData,
                    format!(
                        "the Secret Service item {location} is not Base64 ({} bytes); it was left as it is",
                        secret.len()
                    ),
                )
            }),
    }
}

/// The largest blob whose secret stays well below gnome-keyring's limit on one message
/// (about 63 MiB, the default incoming-message limit of libdbus in the daemon: a larger
/// message makes the bus drop the connection): 32 MiB, 43 MiB once Base64-encoded.
/// MSAL caches are kilobytes.
pub const MAX_SIZE: usize = 32 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_like_dotnet() {
        // Convert.ToBase64String(Encoding.UTF8.GetBytes("{}")) == "e30="
        assert_eq!(&*encode(Encoding::Base64, b"{}"), b"e30=");
        assert_eq!(
            decode(Encoding::Base64, b"e30=".to_vec(), "x").expect("decodes"),
            b"{}"
        );
        let binary: Vec<u8> = (0..=255).collect();
        let secret = encode(Encoding::Base64, &binary).into_owned();
        assert_eq!(
            decode(Encoding::Base64, secret, "x").expect("decodes"),
            binary
        );
        assert_eq!(&*encode(Encoding::Raw, &binary), &binary[..]);
    }

    #[test]
    fn bad_base64_is_corrupt_data_without_the_secret() {
        let err = decode(Encoding::Base64, b"not base64 at all!".to_vec(), "item")
            .expect_err("not base64");
        assert_eq!(err.kind(), ErrorKind::CorruptData);
        assert!(!err.to_string().contains("not base64 at all"), "{err}");
        assert!(err.to_string().contains("18 bytes"), "{err}");
    }
}
