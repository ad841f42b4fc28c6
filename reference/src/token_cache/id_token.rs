//! The ID token: the `IdToken` cache entity that keeps it, and the claims the cache needs
//! from it (who the account is).

use serde_json::{Map, Value};

use super::{
    TokenCacheDocument,
    encoded_json::{MalformedTokenData, decode_object, optional_string, required_string},
    entries::{Secret, Section, string},
    keys::id_token_key,
};

const WHAT: &str = "the ID token's claims";

/// The claims of an ID token the cache uses, read from its payload.
///
/// The signature is not checked: the token came from the authority over TLS in the same
/// response as the tokens it describes, and is only used to name the account in the
/// cache, as every MSAL does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdTokenClaims {
    /// `sub`: required by OpenID Connect.
    pub sub: String,
    /// `oid`: the user's object id in the token's tenant.
    pub oid: Option<String>,
    /// `tid`: the token's tenant.
    pub tid: Option<String>,
    /// `preferred_username`: what the user signs in with, e.g. `user@contoso.com`.
    pub preferred_username: Option<String>,
    /// `upn`: what ADFS sends instead of `preferred_username`.
    pub upn: Option<String>,
    /// `name`: the display name.
    pub name: Option<String>,
    /// `iss`: the issuer.
    pub iss: Option<String>,
    /// `exp`: expiry, epoch seconds (fractions dropped).
    pub exp: Option<u64>,
    /// `iat`: issue time, epoch seconds (fractions dropped).
    pub iat: Option<u64>,
}

impl IdTokenClaims {
    /// Reads the claims of a compact JWT (`header.payload.signature`).
    ///
    /// Errors name what is wrong (not a JWT, not base64url, not a JSON object, `sub`
    /// missing, a claim of the wrong type), never the token; never panics.
    pub fn parse(id_token: &str) -> Result<Self, MalformedTokenData> {
        let parts: Vec<&str> = id_token.trim().split('.').collect();
        let [_header, payload, _signature] = parts[..] else {
            return Err(MalformedTokenData::NotAJwt { parts: parts.len() });
        };
        let claims = decode_object(payload, WHAT)?;
        Ok(IdTokenClaims {
            sub: required_string(&claims, "sub", WHAT)?,
            oid: optional_string(&claims, "oid", WHAT)?,
            tid: optional_string(&claims, "tid", WHAT)?,
            preferred_username: optional_string(&claims, "preferred_username", WHAT)?,
            upn: optional_string(&claims, "upn", WHAT)?,
            name: optional_string(&claims, "name", WHAT)?,
            iss: optional_string(&claims, "iss", WHAT)?,
            exp: numeric_date(&claims, "exp")?,
            iat: numeric_date(&claims, "iat")?,
        })
    }

    /// The account's user name: `preferred_username`, else `upn`, as MSAL Python picks.
    pub fn username(&self) -> Option<&str> {
        self.preferred_username.as_deref().or(self.upn.as_deref())
    }

    /// The `local_account_id` of the account: `oid`, else `sub`, as MSAL Python picks.
    pub fn local_account_id(&self) -> &str {
        self.oid.as_deref().unwrap_or(&self.sub)
    }
}

/// A JWT NumericDate: seconds, possibly with a fraction (RFC 7519 section 2).
fn numeric_date(
    claims: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<u64>, MalformedTokenData> {
    let wrong = MalformedTokenData::WrongType {
        what: WHAT,
        field,
        expected: "a number of seconds",
    };
    match claims.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            // Truncation is what's wanted; the range check keeps the cast exact.
            (None, Some(f)) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                Ok(Some(f as u64))
            }
            _ => Err(wrong),
        },
        Some(_) => Err(wrong),
    }
}

/// An `IdToken` entity: the raw ID token of an account, per client and tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenEntry {
    /// `home_account_id`: `<uid>.<utid>`.
    pub home_account_id: String,
    /// `environment`: the authority host.
    pub environment: String,
    /// `realm`: the tenant the token was issued for.
    pub realm: String,
    /// `client_id`
    pub client_id: String,
    /// `secret`: the ID token itself.
    pub secret: Secret,
}

impl IdTokenEntry {
    /// Reads an entity; `None` when a required field is missing or of the wrong type.
    pub(crate) fn from_object(object: &Map<String, Value>) -> Option<Self> {
        if string(object, "credential_type")? != "IdToken" {
            return None;
        }
        Some(IdTokenEntry {
            home_account_id: string(object, "home_account_id")?.to_owned(),
            environment: string(object, "environment")?.to_owned(),
            realm: string(object, "realm")?.to_owned(),
            client_id: string(object, "client_id")?.to_owned(),
            secret: Secret::new(string(object, "secret")?),
        })
    }

    fn write_into(&self, object: &mut Map<String, Value>) {
        for (field, value) in [
            ("credential_type", "IdToken"),
            ("home_account_id", &self.home_account_id),
            ("environment", &self.environment),
            ("realm", &self.realm),
            ("client_id", &self.client_id),
            ("secret", self.secret.expose()),
        ] {
            object.insert(field.to_owned(), Value::String(value.to_owned()));
        }
    }

    /// The cache key this crate stores the entry under (MSAL Python's).
    pub fn key(&self) -> String {
        id_token_key(
            &self.home_account_id,
            &self.environment,
            &self.client_id,
            &self.realm,
        )
    }
}

impl TokenCacheDocument {
    /// Adds `entry` under its key, or updates the entity there in place keeping fields
    /// this crate does not know. Returns the key.
    pub fn upsert_id_token(&mut self, entry: &IdTokenEntry) -> String {
        let key = entry.key();
        entry.write_into(self.entity_mut(Section::IdToken, &key));
        key
    }

    /// The ID token of an account for a client in a tenant, under any key.
    ///
    /// `home_account_id` and `client_id` compare exactly, `environment` and `realm`
    /// case-insensitively, as in MSAL.
    pub fn find_id_token(
        &self,
        home_account_id: &str,
        environment: &str,
        client_id: &str,
        realm: &str,
    ) -> Option<IdTokenEntry> {
        self.entries(Section::IdToken)
            .filter_map(|(_, object)| IdTokenEntry::from_object(object))
            .find(|e| {
                e.home_account_id == home_account_id
                    && e.environment.eq_ignore_ascii_case(environment)
                    && e.client_id == client_id
                    && e.realm.eq_ignore_ascii_case(realm)
            })
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn reads_the_claims_msal_uses() {
        let claims = IdTokenClaims::parse(&jwt(
            r#"{"sub":"s","oid":"o","tid":"t","preferred_username":"u@x","exp":1700000000.5,"aud":["a"]}"#,
        ))
        .expect("valid");
        assert_eq!(claims.local_account_id(), "o");
        assert_eq!(claims.username(), Some("u@x"));
        assert_eq!(claims.exp, Some(1_700_000_000));
        let adfs = IdTokenClaims::parse(&jwt(r#"{"sub":"s","upn":"u@adfs"}"#)).expect("valid");
        assert_eq!(
            (adfs.local_account_id(), adfs.username()),
            ("s", Some("u@adfs"))
        );
    }

    #[test]
    fn garbage_is_a_typed_error_that_quotes_nothing() {
        let cases: [(&str, &str); 6] = [
            ("secret-no-dots", "found 1"),
            ("a.b.c.d", "found 4"),
            ("a.!!!.c", "not base64url"),
            (&jwt("[1]"), "not a JSON object"),
            (&jwt(r#"{"oid":"o"}"#), "no \"sub\""),
            (
                &jwt(r#"{"sub":"s","exp":"soon"}"#),
                "\"exp\" is not a number",
            ),
        ];
        for (token, says) in cases {
            let err = IdTokenClaims::parse(token).expect_err(token).to_string();
            assert!(err.contains(says), "{err} should say {says}");
            assert!(!err.contains("secret") && !err.contains("soon"), "{err}");
        }
        let negative = jwt(r#"{"sub":"s","exp":-1}"#);
        assert!(IdTokenClaims::parse(&negative).is_err());
    }

    #[test]
    fn found_by_fields_under_any_key() {
        let entry = IdTokenEntry {
            home_account_id: "u.t".into(),
            environment: "login.microsoftonline.com".into(),
            realm: "t".into(),
            client_id: "c".into(),
            secret: Secret::new("idt"),
        };
        let mut doc = TokenCacheDocument::new();
        assert_eq!(
            doc.upsert_id_token(&entry),
            "u.t-login.microsoftonline.com-idtoken-c-t-"
        );
        let found = doc.find_id_token("u.t", "LOGIN.microsoftonline.com", "c", "T");
        assert_eq!(found, Some(entry));
        assert_eq!(
            doc.find_id_token("u.t", "login.microsoftonline.com", "other", "t"),
            None
        );
    }
}
