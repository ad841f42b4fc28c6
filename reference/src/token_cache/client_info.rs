//! `client_info`: who signed in, as the authority tells a client that asked with
//! `client_info=1`. It gives the `home_account_id` every cache entry of the user carries.

use serde_json::{Map, Value};

use super::encoded_json::{MalformedTokenData, decode_object, required_string};

const WHAT: &str = "client_info";

/// The decoded `client_info` of a token response: base64url of `{"uid": ..., "utid": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// `uid`: the user's object id in their home tenant.
    pub uid: String,
    /// `utid`: the user's home tenant id.
    pub utid: String,
}

impl ClientInfo {
    /// Decodes the `client_info` string of a token response.
    ///
    /// Both `uid` and `utid` must be non-empty strings. MSAL Python falls back to the ID
    /// token's `sub` when they are absent (ADFS without `client_info`); this crate signs
    /// in against Microsoft Entra only, which always sends both, so their absence is an
    /// error here rather than a different account id.
    pub fn parse(encoded: &str) -> Result<Self, MalformedTokenData> {
        let object: Map<String, Value> = decode_object(encoded, WHAT)?;
        Ok(ClientInfo {
            uid: required_string(&object, "uid", WHAT)?,
            utid: required_string(&object, "utid", WHAT)?,
        })
    }

    /// `<uid>.<utid>`: the `home_account_id` of the user's cache entries in every MSAL.
    pub fn home_account_id(&self) -> String {
        format!("{}.{}", self.uid, self.utid)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn encode(json: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn home_account_id_is_uid_dot_utid() {
        let info = ClientInfo::parse(&encode(r#"{"uid":"u-1","utid":"t-1","x":3}"#)).expect("ok");
        assert_eq!(info.home_account_id(), "u-1.t-1");
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let missing = MalformedTokenData::Missing {
            what: WHAT,
            field: "utid",
        };
        assert_eq!(
            ClientInfo::parse(&encode(r#"{"uid":"u"}"#)),
            Err(missing.clone())
        );
        assert_eq!(
            ClientInfo::parse(&encode(r#"{"uid":"u","utid":""}"#)),
            Err(missing)
        );
        assert!(matches!(
            ClientInfo::parse(&encode(r#"{"uid":1,"utid":"t"}"#)),
            Err(MalformedTokenData::WrongType { field: "uid", .. })
        ));
        assert!(matches!(
            ClientInfo::parse("not base64 at all!"),
            Err(MalformedTokenData::NotBase64 { .. })
        ));
        assert!(matches!(
            ClientInfo::parse(""),
            Err(MalformedTokenData::NotAJsonObject { .. })
        ));
    }
}
