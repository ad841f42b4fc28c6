//! Typed views of the cache entities this crate reads and writes.
//!
//! A view is built from an entity's JSON object and written back *into* one: fields this
//! crate does not know stay in the object untouched (see
//! [`TokenCacheDocument`](super::TokenCacheDocument)).

use std::{collections::BTreeSet, fmt};

use serde_json::{Map, Value};

/// The known top-level sections of the unified schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// `AccessToken`
    AccessToken,
    /// `RefreshToken`
    RefreshToken,
    /// `IdToken`
    IdToken,
    /// `Account`
    Account,
    /// `AppMetadata`
    AppMetadata,
}

impl Section {
    /// Every known section, in the order MSAL writes them.
    pub const ALL: [Section; 5] = [
        Section::AccessToken,
        Section::RefreshToken,
        Section::IdToken,
        Section::Account,
        Section::AppMetadata,
    ];

    /// The section's name in the JSON document.
    pub fn name(self) -> &'static str {
        match self {
            Section::AccessToken => "AccessToken",
            Section::RefreshToken => "RefreshToken",
            Section::IdToken => "IdToken",
            Section::Account => "Account",
            Section::AppMetadata => "AppMetadata",
        }
    }
}

/// A token or other secret string. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself; callers must keep it out of logs and messages.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An `AccessToken` entity.
///
/// `home_account_id` is empty for app-only tokens (client credentials, managed identity).
/// In the document that is spelled two ways, and each MSAL finds only its own spelling:
/// MSAL Python writes and matches JSON `null`, MSAL JS writes and matches `""`. Reading
/// treats `null`, absent and `""` alike; writing is
/// [`TokenCacheDocument::upsert_access_token`](super::TokenCacheDocument::upsert_access_token)'s
/// business. `target` is the space-separated scope list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenEntry {
    /// `home_account_id`: `<uid>.<utid>`, or empty for app-only tokens.
    pub home_account_id: String,
    /// `environment`: the authority host, e.g. `login.microsoftonline.com`.
    pub environment: String,
    /// `client_id`: the application (client) id.
    pub client_id: String,
    /// `realm`: the tenant.
    pub realm: String,
    /// `target`: the scopes, space-separated.
    pub target: String,
    /// `secret`: the access token.
    pub secret: Secret,
    /// `cached_at`, epoch seconds.
    pub cached_at: u64,
    /// `expires_on`, epoch seconds.
    pub expires_on: u64,
    /// `extended_expires_on`, epoch seconds, when known.
    pub extended_expires_on: Option<u64>,
    /// `refresh_on`, epoch seconds: when MSAL should refresh proactively.
    pub refresh_on: Option<u64>,
    /// `token_type`, `Bearer` for the tokens this crate writes.
    pub token_type: String,
}

impl AccessTokenEntry {
    /// The scopes of `scopes`, sorted and de-duplicated as MSAL Python writes `target`.
    pub fn target_of(scopes: &[&str]) -> String {
        let set: BTreeSet<&str> = scopes.iter().copied().filter(|s| !s.is_empty()).collect();
        set.into_iter().collect::<Vec<_>>().join(" ")
    }

    /// Reads an entity; `None` when a required field is missing or has the wrong type,
    /// or the entity is not a plain bearer access token (PoP, SSH certificates, tokens
    /// bound to claims or to an extended cache key: this crate never serves those).
    pub(crate) fn from_object(object: &Map<String, Value>) -> Option<Self> {
        if string(object, "credential_type")? != "AccessToken" {
            return None;
        }
        let token_type = optional_string(object, "token_type")?.unwrap_or("Bearer");
        if !token_type.eq_ignore_ascii_case("bearer") {
            return None;
        }
        for binding in ["ext_cache_key", "key_id", "kid", "requestedClaimsHash"] {
            if optional_string(object, binding)?.is_some_and(|v| !v.is_empty()) {
                return None;
            }
        }
        Some(AccessTokenEntry {
            home_account_id: optional_string(object, "home_account_id")?
                .unwrap_or("")
                .to_owned(),
            environment: string(object, "environment")?.to_owned(),
            client_id: string(object, "client_id")?.to_owned(),
            realm: optional_string(object, "realm")?.unwrap_or("").to_owned(),
            target: optional_string(object, "target")?.unwrap_or("").to_owned(),
            secret: Secret::new(string(object, "secret")?),
            cached_at: optional_timestamp(object, "cached_at")?.unwrap_or(0),
            expires_on: timestamp(object, "expires_on")?,
            extended_expires_on: optional_timestamp(object, "extended_expires_on")?,
            refresh_on: optional_timestamp(object, "refresh_on")?,
            token_type: token_type.to_owned(),
        })
    }

    /// Writes the fields this crate knows into `object`, keeping every other field.
    /// All values are strings, as the schema wants (`home_account_id` too: the caller
    /// turns it into Python's `null` where that is wanted).
    pub(crate) fn write_into(&self, object: &mut Map<String, Value>) {
        let mut set = |k: &str, v: String| {
            object.insert(k.to_owned(), Value::String(v));
        };
        set("credential_type", "AccessToken".into());
        set("home_account_id", self.home_account_id.clone());
        set("environment", self.environment.clone());
        set("client_id", self.client_id.clone());
        set("realm", self.realm.clone());
        set("target", self.target.clone());
        set("secret", self.secret.expose().to_owned());
        set("cached_at", self.cached_at.to_string());
        set("expires_on", self.expires_on.to_string());
        set(
            "extended_expires_on",
            self.extended_expires_on
                .unwrap_or(self.expires_on)
                .to_string(),
        );
        set("token_type", self.token_type.clone());
        match self.refresh_on {
            Some(at) => set("refresh_on", at.to_string()),
            None => {
                // A stale refresh_on of the token this one replaces would make MSAL
                // refresh the new token at the old token's time.
                object.remove("refresh_on");
            }
        }
    }

    /// The cache key this crate stores the entry under: MSAL Python's.
    pub fn key(&self) -> String {
        super::keys::access_token_key(
            &self.home_account_id,
            &self.environment,
            &self.client_id,
            &self.realm,
            &self.target,
        )
    }
}

/// What [`TokenCacheDocument::find_access_token`](super::TokenCacheDocument::find_access_token)
/// looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenQuery<'a> {
    /// The account, or `None` for an app-only token.
    pub home_account_id: Option<&'a str>,
    /// The authority host; compared case-insensitively, as MSAL does.
    pub environment: &'a str,
    /// The client id; compared exactly.
    pub client_id: &'a str,
    /// The tenant; compared case-insensitively.
    pub realm: &'a str,
    /// The scopes wanted: an entry matches when its `target` contains all of them
    /// (case-insensitively, as MSAL JS's `ScopeSet` compares).
    pub scopes: &'a [&'a str],
}

impl<'a> AccessTokenQuery<'a> {
    /// A query for an app-only token.
    pub fn app_only(
        environment: &'a str,
        client_id: &'a str,
        realm: &'a str,
        scopes: &'a [&'a str],
    ) -> Self {
        AccessTokenQuery {
            home_account_id: None,
            environment,
            client_id,
            realm,
            scopes,
        }
    }

    /// A query for a user's token: `home_account_id` is `<uid>.<utid>` (compared exactly),
    /// `realm` the tenant the token was issued for.
    pub fn for_account(
        home_account_id: &'a str,
        environment: &'a str,
        client_id: &'a str,
        realm: &'a str,
        scopes: &'a [&'a str],
    ) -> Self {
        AccessTokenQuery {
            home_account_id: Some(home_account_id),
            environment,
            client_id,
            realm,
            scopes,
        }
    }

    pub(crate) fn matches(&self, entry: &AccessTokenEntry) -> bool {
        let account = self.home_account_id.unwrap_or("");
        let have: BTreeSet<String> = entry
            .target
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
        entry.home_account_id == account
            && entry.environment.eq_ignore_ascii_case(self.environment)
            && entry.client_id == self.client_id
            && entry.realm.eq_ignore_ascii_case(self.realm)
            && !self.scopes.is_empty()
            && self.scopes.iter().all(|s| have.contains(&s.to_lowercase()))
    }
}

/// An `AppMetadata` entity: which client used which authority host (and, for FOCI
/// clients, which family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMetadataEntry {
    /// `client_id`
    pub client_id: String,
    /// `environment`
    pub environment: String,
    /// `family_id`, for FOCI clients.
    pub family_id: Option<String>,
}

impl AppMetadataEntry {
    pub(crate) fn write_into(&self, object: &mut Map<String, Value>) {
        object.insert("client_id".into(), Value::String(self.client_id.clone()));
        object.insert(
            "environment".into(),
            Value::String(self.environment.clone()),
        );
        if let Some(family) = &self.family_id {
            object.insert("family_id".into(), Value::String(family.clone()));
        }
    }

    /// The cache key this crate stores the entry under.
    pub fn key(&self) -> String {
        super::keys::app_metadata_key(&self.environment, &self.client_id)
    }
}

/// A required string field; `None` when absent or not a string.
pub(super) fn string<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    object.get(field)?.as_str()
}

/// An optional string field: `Some(None)` when absent or `null` (MSAL Python writes
/// `null` for the `home_account_id` of app-only tokens), `None` for any other type.
pub(super) fn optional_string<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> Option<Option<&'a str>> {
    match object.get(field) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        Some(_) => None,
    }
}

/// A required timestamp: epoch seconds as a decimal string, as every MSAL writes it, or
/// as a JSON integer, which some readers tolerate.
fn timestamp(object: &Map<String, Value>, field: &str) -> Option<u64> {
    optional_timestamp(object, field)?
}

pub(super) fn optional_timestamp(object: &Map<String, Value>, field: &str) -> Option<Option<u64>> {
    match object.get(field) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => s.trim().parse().ok().map(Some),
        Some(Value::Number(n)) => n.as_u64().map(Some),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).expect("test json")
    }

    #[test]
    fn reads_python_app_only_entries_with_null_home_account() {
        let entry = AccessTokenEntry::from_object(&object(
            r#"{"credential_type":"AccessToken","secret":"s","home_account_id":null,
                "environment":"login.microsoftonline.com","client_id":"c","target":"a b",
                "realm":"t","token_type":"Bearer","cached_at":"1","expires_on":"100",
                "extended_expires_on":"100"}"#,
        ))
        .expect("valid entry");
        assert_eq!(entry.home_account_id, "");
        assert_eq!(entry.expires_on, 100);
        let query = AccessTokenQuery::app_only("LOGIN.microsoftonline.com", "c", "T", &["B"]);
        assert!(query.matches(&entry));
    }

    #[test]
    fn refuses_wrong_types_and_bound_tokens() {
        for bad in [
            r#"{"credential_type":"AccessToken","secret":1,"environment":"e","client_id":"c","expires_on":"1"}"#,
            r#"{"credential_type":"AccessToken","secret":"s","environment":"e","client_id":"c","expires_on":"soon"}"#,
            r#"{"credential_type":"AccessToken","secret":"s","environment":"e","client_id":"c"}"#,
            r#"{"credential_type":"AccessToken_With_AuthScheme","secret":"s","environment":"e","client_id":"c","expires_on":"1"}"#,
            r#"{"credential_type":"AccessToken","secret":"s","environment":"e","client_id":"c","expires_on":"1","token_type":"pop"}"#,
            r#"{"credential_type":"AccessToken","secret":"s","environment":"e","client_id":"c","expires_on":"1","ext_cache_key":"x"}"#,
        ] {
            assert_eq!(AccessTokenEntry::from_object(&object(bad)), None, "{bad}");
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug_or_display() {
        let secret = Secret::new("eyJhbGciOi-very-secret");
        assert!(!format!("{secret:?} {secret}").contains("very-secret"));
    }

    #[test]
    fn target_is_sorted_and_deduplicated() {
        assert_eq!(AccessTokenEntry::target_of(&["b", "a", "b", ""]), "a b");
    }
}
