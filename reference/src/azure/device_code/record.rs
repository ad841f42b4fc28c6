//! [`AuthenticationRecord`]: which account signed in, to find its tokens again later.

use serde::{Deserialize, Serialize};

use super::DeviceCodeError;

/// The account a credential signed in, as the other Azure SDKs export it: no secret, only
/// the identity of the account, so a later process (or another SDK) finds its tokens in
/// the persistent cache without a new sign-in.
///
/// [`serialize`](Self::serialize) writes the JSON of the JS SDK's
/// `serializeAuthenticationRecord` and Python's `AuthenticationRecord.serialize()`:
/// `{"authority", "homeAccountId", "clientId", "tenantId", "username", "version": "1.0"}`.
/// `authority` is the host name, as Python writes it (the MSAL account's `environment`);
/// [`deserialize`](Self::deserialize) also takes the JS SDK's `host/tenant` form and a URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationRecord {
    /// The authority host, e.g. `login.microsoftonline.com`.
    pub authority: String,
    /// The MSAL home account id, `<object id>.<home tenant id>`.
    pub home_account_id: String,
    /// The application (client) id the account signed in to.
    pub client_id: String,
    /// The tenant the account signed in to.
    pub tenant_id: String,
    /// The user's sign-in name (`preferred_username`), e.g. `user@contoso.com`.
    pub username: String,
}

/// The only version of the format, which every SDK writes and accepts.
const VERSION: &str = "1.0";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Versioned<'a> {
    #[serde(flatten)]
    record: &'a AuthenticationRecord,
    version: &'static str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tagged {
    #[serde(flatten)]
    record: AuthenticationRecord,
    #[serde(default)]
    version: Option<String>,
}

impl AuthenticationRecord {
    /// The record as JSON, readable by the JS, Python and .NET Azure Identity SDKs.
    pub fn serialize(&self) -> String {
        // Serialising a struct of strings to a String cannot fail.
        serde_json::to_string(&Versioned {
            record: self,
            version: VERSION,
        })
        .unwrap_or_default()
    }

    /// Reads a record serialised by this crate or another Azure SDK. Fails, without
    /// echoing the input, on bad JSON, missing fields or another version than `1.0`.
    pub fn deserialize(json: &str) -> Result<Self, DeviceCodeError> {
        let tagged: Tagged = serde_json::from_str(json)
            .map_err(|e| DeviceCodeError::InvalidRecord(e.to_string()))?;
        if let Some(version) = tagged.version.filter(|v| v != VERSION) {
            return Err(DeviceCodeError::InvalidRecord(format!(
                "unsupported version {version:?} (only {VERSION})"
            )));
        }
        Ok(tagged.record)
    }

    /// The host name of [`authority`](Self::authority), lower-cased: the MSAL
    /// `environment` of the record's cache entries.
    pub fn environment(&self) -> String {
        let authority = if self.authority.contains("://") {
            self.authority.clone()
        } else {
            format!("https://{}", self.authority)
        };
        crate::azure::CacheIdentity::new("", "")
            .with_authority_host(authority)
            .environment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuthenticationRecord {
        AuthenticationRecord {
            authority: "login.microsoftonline.com".into(),
            home_account_id: "uid.utid".into(),
            client_id: "client".into(),
            tenant_id: "utid".into(),
            username: "user@contoso.com".into(),
        }
    }

    #[test]
    fn round_trips_in_the_sdk_format() {
        let json = record().serialize();
        let value: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"authority": "login.microsoftonline.com", "homeAccountId": "uid.utid",
                "clientId": "client", "tenantId": "utid", "username": "user@contoso.com",
                "version": "1.0"})
        );
        assert_eq!(
            AuthenticationRecord::deserialize(&json).expect("valid"),
            record()
        );
    }

    #[test]
    fn reads_the_js_authority_and_refuses_other_versions() {
        let js = r#"{"authority":"https://login.microsoftonline.com/utid","homeAccountId":"uid.utid",
            "clientId":"client","tenantId":"utid","username":"user@contoso.com","version":"1.0"}"#;
        let r = AuthenticationRecord::deserialize(js).expect("valid");
        assert_eq!(r.environment(), "login.microsoftonline.com");
        assert_eq!(record().environment(), "login.microsoftonline.com");
        let v2 = js.replace("\"1.0\"", "\"2.0\"");
        assert!(matches!(
            AuthenticationRecord::deserialize(&v2),
            Err(DeviceCodeError::InvalidRecord(_))
        ));
        assert!(AuthenticationRecord::deserialize(r#"{"authority":"x"}"#).is_err());
    }
}
