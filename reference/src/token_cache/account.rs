//! The `Account` entity: a signed-in user as every MSAL lists it (`get_accounts()` in
//! Python, `getAllAccounts()` in JS).

use serde_json::{Map, Value};

use super::{
    ClientInfo, IdTokenClaims, TokenCacheDocument,
    entries::{Section, optional_string, string},
    keys::account_key,
};

/// `authority_type` of Microsoft Entra ID (v2 endpoint) accounts, work and personal.
pub const AUTHORITY_TYPE_MSSTS: &str = "MSSTS";

/// An `Account` entity, one per account and tenant (`realm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEntry {
    /// `home_account_id`: `<uid>.<utid>`.
    pub home_account_id: String,
    /// `environment`: the authority host.
    pub environment: String,
    /// `realm`: the tenant of this entity.
    pub realm: String,
    /// `local_account_id`: the user's object id in `realm`.
    pub local_account_id: String,
    /// `username`, e.g. `user@contoso.com`; empty when the authority sent none (the
    /// schema wants a string, never `null`).
    pub username: String,
    /// `authority_type`: [`AUTHORITY_TYPE_MSSTS`] for Microsoft Entra ID. MSAL Python
    /// lists only accounts that have one (it fails on an account without it).
    pub authority_type: String,
    /// `account_source`: the grant that established the account, written by MSAL Python
    /// (e.g. `urn:ietf:params:oauth:grant-type:device_code`) so that a broker-enabled app
    /// does not try its broker for an account the broker never saw.
    pub account_source: Option<String>,
}

impl AccountEntry {
    /// The account of a sign-in, as MSAL Python records it from a token response:
    /// `home_account_id` from `client_info`, `local_account_id` and `username` from the ID
    /// token, `authority_type` MSSTS, and `account_source` the grant type.
    ///
    /// `realm` is the tenant of the authority the credential signed in with (what MSAL
    /// Python takes from the token endpoint and looks up again in silent calls).
    pub fn from_sign_in(
        client_info: &ClientInfo,
        claims: &IdTokenClaims,
        environment: &str,
        realm: &str,
        grant_type: &str,
    ) -> Self {
        AccountEntry {
            home_account_id: client_info.home_account_id(),
            environment: environment.to_owned(),
            realm: realm.to_owned(),
            local_account_id: claims.local_account_id().to_owned(),
            username: claims.username().unwrap_or("").to_owned(),
            authority_type: AUTHORITY_TYPE_MSSTS.to_owned(),
            account_source: Some(grant_type.to_owned()),
        }
    }

    /// Reads an entity; `None` without a `home_account_id` or `environment` string, or
    /// with a field of the wrong type. Missing optional strings read as empty.
    pub(crate) fn from_object(object: &Map<String, Value>) -> Option<Self> {
        let text = |field| Some(optional_string(object, field)?.unwrap_or("").to_owned());
        Some(AccountEntry {
            home_account_id: string(object, "home_account_id")?.to_owned(),
            environment: string(object, "environment")?.to_owned(),
            realm: text("realm")?,
            local_account_id: text("local_account_id")?,
            username: text("username")?,
            authority_type: text("authority_type")?,
            account_source: optional_string(object, "account_source")?.map(str::to_owned),
        })
    }

    fn write_into(&self, object: &mut Map<String, Value>) {
        for (field, value) in [
            ("home_account_id", &self.home_account_id),
            ("environment", &self.environment),
            ("realm", &self.realm),
            ("local_account_id", &self.local_account_id),
            ("username", &self.username),
            ("authority_type", &self.authority_type),
        ] {
            object.insert(field.to_owned(), Value::String(value.clone()));
        }
        // A source another SDK recorded (e.g. "broker") is kept when ours is unknown.
        if let Some(source) = &self.account_source {
            object.insert("account_source".to_owned(), Value::String(source.clone()));
        }
    }

    /// The cache key this crate stores the entry under (every MSAL's).
    pub fn key(&self) -> String {
        account_key(&self.home_account_id, &self.environment, &self.realm)
    }

    /// The home tenant: the part of `home_account_id` after the dot.
    fn home_tenant(&self) -> Option<&str> {
        self.home_account_id.split_once('.').map(|(_, utid)| utid)
    }
}

impl TokenCacheDocument {
    /// Adds `entry` under its key, or updates the entity there in place keeping fields
    /// this crate does not know. Returns the key.
    pub fn upsert_account(&mut self, entry: &AccountEntry) -> String {
        let key = entry.key();
        entry.write_into(self.entity_mut(Section::Account, &key));
        key
    }

    /// Every readable `Account` entity, in key order (one per account and tenant).
    pub fn accounts(&self) -> impl Iterator<Item = AccountEntry> + '_ {
        self.entries(Section::Account)
            .filter_map(|(_, object)| AccountEntry::from_object(object))
    }

    /// An account by `home_account_id` (exact) and `environment` (case-insensitive), under
    /// any key. Of its entities (one per tenant), the one of its home tenant when there is
    /// one, else the first in key order.
    pub fn find_account(&self, home_account_id: &str, environment: &str) -> Option<AccountEntry> {
        let mut matching = self.accounts().filter(|a| {
            a.home_account_id == home_account_id && a.environment.eq_ignore_ascii_case(environment)
        });
        let first = matching.next()?;
        if first
            .home_tenant()
            .is_some_and(|t| t.eq_ignore_ascii_case(&first.realm))
        {
            return Some(first);
        }
        let home = matching.find(|a| {
            a.home_tenant()
                .is_some_and(|t| t.eq_ignore_ascii_case(&a.realm))
        });
        Some(home.unwrap_or(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(realm: &str) -> AccountEntry {
        AccountEntry {
            home_account_id: "u.home".into(),
            environment: "login.microsoftonline.com".into(),
            realm: realm.into(),
            local_account_id: "u".into(),
            username: "user@example.com".into(),
            authority_type: AUTHORITY_TYPE_MSSTS.into(),
            account_source: None,
        }
    }

    #[test]
    fn find_prefers_the_home_tenant_and_keeps_foreign_fields() {
        let mut doc = TokenCacheDocument::parse(
            br#"{"Account": {"u.home-login.microsoftonline.com-home": {"home_account_id": "u.home",
                "environment": "login.microsoftonline.com", "realm": "home",
                "account_source": "broker", "tenantProfiles": ["x"]}}}"#,
        )
        .expect("valid");
        doc.upsert_account(&account("a-guest-tenant"));
        let key = doc.upsert_account(&account("home"));
        assert_eq!(key, "u.home-login.microsoftonline.com-home");
        let entity = &doc.as_json()["Account"][&key];
        assert_eq!(entity["tenantProfiles"], serde_json::json!(["x"]));
        assert_eq!(entity["account_source"], "broker");
        assert_eq!(doc.accounts().count(), 2);
        let found = doc
            .find_account("u.home", "LOGIN.microsoftonline.com")
            .expect("found");
        assert_eq!(found.realm, "home");
        assert_eq!(
            doc.find_account("u.other", "login.microsoftonline.com"),
            None
        );
    }

    #[test]
    fn unreadable_accounts_are_skipped() {
        let doc = TokenCacheDocument::parse(
            br#"{"Account": {"a": {"environment": "e"}, "b": {"home_account_id": "h",
                "environment": "e", "username": 3}, "c": 7}}"#,
        )
        .expect("valid");
        assert_eq!(doc.accounts().count(), 0);
    }
}
