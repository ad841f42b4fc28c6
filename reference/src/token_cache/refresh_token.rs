//! The `RefreshToken` entity: what keeps an account signed in across processes.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::{
    TokenCacheDocument,
    entries::{Secret, Section, optional_string, optional_timestamp, string},
    keys::refresh_token_key,
};

/// A `RefreshToken` entity.
///
/// A refresh token is valid across tenants, so it has no `realm`; MSAL Python also writes
/// the scopes it was obtained with (`target`), which nobody matches on and which this
/// crate keeps as it finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenEntry {
    /// `home_account_id`: `<uid>.<utid>`.
    pub home_account_id: String,
    /// `environment`: the authority host.
    pub environment: String,
    /// `client_id`: the client the token was issued to.
    pub client_id: String,
    /// `secret`: the refresh token.
    pub secret: Secret,
    /// `family_id`: set (to `"1"`) when the authority said the token is a family refresh
    /// token (FOCI: `"foci": "1"` in the token response), usable by every client of the
    /// family.
    pub family_id: Option<String>,
}

impl RefreshTokenEntry {
    fn from_object(object: &Map<String, Value>) -> Option<Self> {
        if string(object, "credential_type")? != "RefreshToken" {
            return None;
        }
        Some(RefreshTokenEntry {
            home_account_id: string(object, "home_account_id")?.to_owned(),
            environment: string(object, "environment")?.to_owned(),
            client_id: string(object, "client_id")?.to_owned(),
            secret: Secret::new(string(object, "secret")?),
            family_id: optional_string(object, "family_id")?
                .filter(|f| !f.is_empty())
                .map(str::to_owned),
        })
    }

    fn write_into(&self, object: &mut Map<String, Value>, now: u64) {
        let mut set = |k: &str, v: &str| {
            object.insert(k.to_owned(), Value::String(v.to_owned()));
        };
        set("credential_type", "RefreshToken");
        set("home_account_id", &self.home_account_id);
        set("environment", &self.environment);
        set("client_id", &self.client_id);
        set("secret", self.secret.expose());
        // MSAL Python tries an account's refresh tokens newest first by this field.
        set("last_modification_time", &now.to_string());
        match &self.family_id {
            Some(family) => set("family_id", family),
            None => {
                // The authority no longer says this client is in a family: a stale
                // family_id would offer the new token to the family's other clients.
                object.remove("family_id");
            }
        }
    }

    fn is_for(&self, home_account_id: &str, environment: &str) -> bool {
        self.home_account_id == home_account_id
            && self.environment.eq_ignore_ascii_case(environment)
    }

    /// The key of a new entity (MSAL Python's, with no `target`).
    pub fn key(&self) -> String {
        refresh_token_key(
            &self.home_account_id,
            &self.environment,
            &self.client_id,
            "",
        )
    }
}

impl TokenCacheDocument {
    /// Stores a new refresh token of an account for a client.
    ///
    /// Every `RefreshToken` entity of that account, environment and client, under any key
    /// (MSAL Python's and MSAL JS's keys differ), gets the new secret, `family_id` and
    /// `last_modification_time` in place, keeping its other fields; an account and client
    /// without one gets a new entity under [`RefreshTokenEntry::key`]. So an old token
    /// never stays beside the new one to be tried first by another SDK. Returns the keys
    /// written.
    pub fn upsert_refresh_token(&mut self, entry: &RefreshTokenEntry) -> Vec<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut keys: Vec<String> = self
            .refresh_tokens()
            .filter(|(_, rt, _)| {
                rt.is_for(&entry.home_account_id, &entry.environment)
                    && rt.client_id == entry.client_id
            })
            .map(|(key, _, _)| key.to_owned())
            .collect();
        if keys.is_empty() {
            keys.push(entry.key());
        }
        for key in &keys {
            entry.write_into(self.entity_mut(Section::RefreshToken, key), now);
        }
        keys
    }

    /// The refresh token to redeem for an account and client, under any key.
    ///
    /// FOCI, as MSAL Python and MSAL JS do it: when this client's `AppMetadata` names a
    /// family, a family refresh token of the account (issued to any client of that family)
    /// is preferred, and the client's own token is the fallback. A client without
    /// `AppMetadata` gets only its own token: MSAL Python then also tries family tokens and
    /// learns from the authority's `client_mismatch` whether it is in the family, a round
    /// trip this lookup cannot make. Among several candidates the newest
    /// (`last_modification_time`) wins. `environment` compares case-insensitively,
    /// `home_account_id` and `client_id` exactly.
    pub fn find_refresh_token(
        &self,
        home_account_id: &str,
        environment: &str,
        client_id: &str,
    ) -> Option<RefreshTokenEntry> {
        let family = self.family_of(environment, client_id);
        let newest = |wanted: &dyn Fn(&RefreshTokenEntry) -> bool| {
            self.refresh_tokens()
                .filter(|(_, rt, _)| rt.is_for(home_account_id, environment) && wanted(rt))
                .max_by_key(|(_, _, modified)| *modified)
                .map(|(_, rt, _)| rt)
        };
        family
            .and_then(|f| newest(&|rt| rt.family_id.as_deref() == Some(f)))
            .or_else(|| newest(&|rt| rt.client_id == client_id))
    }

    /// Removes a refresh token the authority rejected (`invalid_grant`): every entity
    /// holding that same token for that account, environment and client, under any key.
    /// A newer token another process stored meanwhile has another secret and stays.
    /// Returns how many entities were removed.
    pub fn remove_refresh_token(&mut self, rejected: &RefreshTokenEntry) -> usize {
        let keys: Vec<String> = self
            .refresh_tokens()
            .filter(|(_, rt, _)| {
                rt.is_for(&rejected.home_account_id, &rejected.environment)
                    && rt.client_id == rejected.client_id
                    && rt.secret == rejected.secret
            })
            .map(|(key, _, _)| key.to_owned())
            .collect();
        for key in &keys {
            self.remove_entity(Section::RefreshToken, key);
        }
        keys.len()
    }

    /// Readable refresh tokens with their key and `last_modification_time` (0 if none).
    fn refresh_tokens(&self) -> impl Iterator<Item = (&str, RefreshTokenEntry, u64)> {
        self.entries(Section::RefreshToken)
            .filter_map(|(key, object)| {
                let modified = optional_timestamp(object, "last_modification_time")
                    .flatten()
                    .unwrap_or(0);
                Some((key, RefreshTokenEntry::from_object(object)?, modified))
            })
    }

    /// The `family_id` of a client's `AppMetadata`, under any key.
    fn family_of(&self, environment: &str, client_id: &str) -> Option<&str> {
        self.entries(Section::AppMetadata).find_map(|(_, app)| {
            let matches = string(app, "client_id")? == client_id
                && string(app, "environment")?.eq_ignore_ascii_case(environment);
            matches
                .then(|| string(app, "family_id"))
                .flatten()
                .filter(|f| !f.is_empty())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token_cache::AppMetadataEntry;

    const ENV: &str = "login.microsoftonline.com";

    fn rt(client_id: &str, secret: &str, family_id: Option<&str>) -> RefreshTokenEntry {
        RefreshTokenEntry {
            home_account_id: "u.t".into(),
            environment: ENV.into(),
            client_id: client_id.into(),
            secret: Secret::new(secret),
            family_id: family_id.map(str::to_owned),
        }
    }

    #[test]
    fn upsert_replaces_every_copy_in_place_and_keeps_foreign_fields() {
        let mut doc = TokenCacheDocument::parse(
            br#"{"RefreshToken": {
                "u.t-login.microsoftonline.com-refreshtoken-c--openid profile": {
                    "credential_type": "RefreshToken", "home_account_id": "u.t",
                    "environment": "login.microsoftonline.com", "client_id": "c",
                    "secret": "old", "target": "openid profile", "family_id": "1"},
                "u.t-login.microsoftonline.com-refreshtoken-c----": {
                    "credential_type": "RefreshToken", "home_account_id": "u.t",
                    "environment": "login.microsoftonline.com", "client_id": "c",
                    "secret": "old"}}}"#,
        )
        .expect("valid");
        let keys = doc.upsert_refresh_token(&rt("c", "new", None));
        assert_eq!(keys.len(), 2);
        for key in &keys {
            let entity = &doc.as_json()["RefreshToken"][key];
            assert_eq!(entity["secret"], "new");
            assert!(entity.get("family_id").is_none());
            assert!(entity["last_modification_time"].as_str().is_some());
        }
        assert_eq!(
            doc.as_json()["RefreshToken"]["u.t-login.microsoftonline.com-refreshtoken-c--openid profile"]
                ["target"],
            "openid profile"
        );
        let mut empty = TokenCacheDocument::new();
        assert_eq!(
            empty.upsert_refresh_token(&rt("c", "new", None)),
            ["u.t-login.microsoftonline.com-refreshtoken-c--"]
        );
    }

    #[test]
    fn a_family_token_is_found_only_for_a_client_of_that_family() {
        let mut doc = TokenCacheDocument::new();
        doc.upsert_refresh_token(&rt("other-family-app", "frt", Some("1")));
        doc.upsert_refresh_token(&rt("mine", "own", None));
        let find = |doc: &TokenCacheDocument| {
            doc.find_refresh_token("u.t", "LOGIN.microsoftonline.com", "mine")
                .map(|rt| rt.secret.expose().to_owned())
        };
        assert_eq!(
            find(&doc).as_deref(),
            Some("own"),
            "no AppMetadata: own token only"
        );
        doc.upsert_app_metadata(&AppMetadataEntry {
            client_id: "mine".into(),
            environment: ENV.into(),
            family_id: Some("1".into()),
        });
        assert_eq!(
            find(&doc).as_deref(),
            Some("frt"),
            "in the family: the family token first"
        );
        assert_eq!(doc.find_refresh_token("u.other", ENV, "mine"), None);
        assert_eq!(doc.find_refresh_token("u.t", ENV, "stranger"), None);
    }

    #[test]
    fn remove_takes_only_the_rejected_token() {
        let mut doc = TokenCacheDocument::new();
        doc.upsert_refresh_token(&rt("c", "rejected", None));
        assert_eq!(doc.remove_refresh_token(&rt("c", "a-newer-one", None)), 0);
        assert_eq!(doc.remove_refresh_token(&rt("c", "rejected", None)), 1);
        assert_eq!(doc.find_refresh_token("u.t", ENV, "c"), None);
    }
}
