//! The base64url-encoded JSON objects an authority sends with a user's tokens:
//! `client_info` and the payload of the ID token.
//!
//! Decoded with the `base64` crate; nothing here checks a signature. The cache only needs
//! the account's identifiers, which MSAL takes from these same fields without validating
//! the ID token either (the token came straight from the authority over TLS).

use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use serde_json::{Map, Value};

/// Why `client_info` or an ID token could not be read. Messages name the defect and the
/// field, never the content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedTokenData {
    /// The ID token is not `header.payload.signature`.
    #[error("the ID token is not a JWT: expected 3 dot-separated parts, found {parts}")]
    NotAJwt {
        /// How many dot-separated parts there were.
        parts: usize,
    },
    /// Not base64url (nor standard base64, which some authorities send).
    #[error("{what} is not base64url")]
    NotBase64 {
        /// `client_info` or `the ID token's claims`.
        what: &'static str,
    },
    /// Decoded, but not a UTF-8 JSON object.
    #[error("{what} is not a JSON object")]
    NotAJsonObject {
        /// `client_info` or `the ID token's claims`.
        what: &'static str,
    },
    /// A required field is absent or empty.
    #[error("{what} has no {field:?}")]
    Missing {
        /// `client_info` or `the ID token's claims`.
        what: &'static str,
        /// The JSON field.
        field: &'static str,
    },
    /// A field has the wrong JSON type.
    #[error("{what}: {field:?} is not {expected}")]
    WrongType {
        /// `client_info` or `the ID token's claims`.
        what: &'static str,
        /// The JSON field.
        field: &'static str,
        /// What it should be, e.g. `a string`.
        expected: &'static str,
    },
}

/// base64url with or without padding, as JWTs (none) and `client_info` (either) come.
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
/// Standard base64, which MSAL Python also accepts for `client_info`.
const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes `encoded` into a JSON object; `what` names it in errors.
pub(super) fn decode_object(
    encoded: &str,
    what: &'static str,
) -> Result<Map<String, Value>, MalformedTokenData> {
    let encoded = encoded.trim();
    let bytes = URL_SAFE
        .decode(encoded)
        .or_else(|_| STANDARD.decode(encoded))
        .map_err(|_| MalformedTokenData::NotBase64 { what })?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(MalformedTokenData::NotAJsonObject { what }),
    }
}

/// An optional string field: absent or `null` is `None`, another type an error.
pub(super) fn optional_string(
    object: &Map<String, Value>,
    field: &'static str,
    what: &'static str,
) -> Result<Option<String>, MalformedTokenData> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(MalformedTokenData::WrongType {
            what,
            field,
            expected: "a string",
        }),
    }
}

/// A required, non-empty string field.
pub(super) fn required_string(
    object: &Map<String, Value>,
    field: &'static str,
    what: &'static str,
) -> Result<String, MalformedTokenData> {
    optional_string(object, field, what)?
        .filter(|s| !s.is_empty())
        .ok_or(MalformedTokenData::Missing { what, field })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_and_alphabet_are_tolerated_garbage_is_typed() {
        // {"a":"?>"} has '+'/'/' in standard base64 and '-'/'_' in base64url.
        let url = URL_SAFE.encode(br#"{"a":"?>?"}"#);
        let std = STANDARD.encode(br#"{"a":"?>?"}"#);
        assert_ne!(url, std);
        for encoded in [url.trim_end_matches('='), &url, &std] {
            assert_eq!(decode_object(encoded, "x").expect("decodes")["a"], "?>?");
        }
        assert_eq!(
            decode_object("!!!", "x"),
            Err(MalformedTokenData::NotBase64 { what: "x" })
        );
        assert_eq!(
            decode_object(&URL_SAFE.encode(b"[1]"), "x"),
            Err(MalformedTokenData::NotAJsonObject { what: "x" })
        );
        assert_eq!(
            decode_object(&URL_SAFE.encode(b"\xff\xfe"), "x"),
            Err(MalformedTokenData::NotAJsonObject { what: "x" })
        );
    }
}
