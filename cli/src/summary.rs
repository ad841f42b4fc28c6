//! What a cache document holds, read through an allow-list of fields that are not secret:
//! the `secret` field (access, refresh and ID tokens) and anything unknown are never
//! copied, so nothing built from here can print a token.

use identity_cache_persistence::token_cache::{Section, TokenCacheDocument};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::time;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub accounts: Vec<Account>,
    pub tokens: Vec<Token>,
    pub apps: Vec<App>,
    /// Every top-level section with its number of entries, known ones first.
    pub sections: Vec<SectionCount>,
    /// How many top-level sections this tool does not know (another SDK's).
    pub unknown_sections: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub username: Option<String>,
    pub home_account_id: Option<String>,
    pub environment: Option<String>,
    pub realm: Option<String>,
    pub authority_type: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Token {
    /// `AccessToken`, `RefreshToken`, `IdToken`, or the entry's own credential type.
    pub kind: String,
    pub client_id: Option<String>,
    pub home_account_id: Option<String>,
    pub environment: Option<String>,
    pub realm: Option<String>,
    pub scopes: Vec<String>,
    pub family_id: Option<String>,
    pub expires_on: Option<String>,
    pub expired: Option<bool>,
    /// Always `<redacted>`: the token itself is never read.
    pub secret: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct App {
    pub client_id: Option<String>,
    pub environment: Option<String>,
    pub family_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SectionCount {
    pub name: String,
    pub entries: usize,
    pub known: bool,
}

const REDACTED: &str = "<redacted>";

/// The summary of `doc`; expiry judged against `now` (epoch seconds).
pub fn summarize(doc: &TokenCacheDocument, now: i64) -> Summary {
    let accounts = doc
        .entries(Section::Account)
        .map(|(_, e)| Account {
            username: text(e, "username"),
            home_account_id: text(e, "home_account_id"),
            environment: text(e, "environment"),
            realm: text(e, "realm"),
            authority_type: text(e, "authority_type"),
        })
        .collect();
    let tokens = [
        Section::AccessToken,
        Section::RefreshToken,
        Section::IdToken,
    ]
    .into_iter()
    .flat_map(|section| {
        doc.entries(section)
            .map(move |(_, e)| token(section, e, now))
    })
    .collect();
    let apps = doc
        .entries(Section::AppMetadata)
        .map(|(_, e)| App {
            client_id: text(e, "client_id"),
            environment: text(e, "environment"),
            family_id: text(e, "family_id"),
        })
        .collect();
    let known: Vec<&str> = Section::ALL.iter().map(|s| s.name()).collect();
    let mut sections: Vec<SectionCount> = doc
        .as_json()
        .iter()
        .map(|(name, value)| SectionCount {
            name: name.clone(),
            entries: match value {
                Value::Object(map) => map.len(),
                Value::Array(list) => list.len(),
                _ => 1,
            },
            known: known.contains(&name.as_str()),
        })
        .collect();
    sections.sort_by_key(|s| {
        (
            known
                .iter()
                .position(|k| *k == s.name)
                .unwrap_or(known.len()),
            s.name.clone(),
        )
    });
    let unknown_sections = sections.iter().filter(|s| !s.known).count();
    Summary {
        accounts,
        tokens,
        apps,
        sections,
        unknown_sections,
    }
}

fn token(section: Section, entry: &Map<String, Value>, now: i64) -> Token {
    let expires = text(entry, "expires_on").and_then(|s| s.parse::<i64>().ok());
    Token {
        kind: text(entry, "credential_type").unwrap_or_else(|| section.name().to_owned()),
        client_id: text(entry, "client_id"),
        home_account_id: text(entry, "home_account_id"),
        environment: text(entry, "environment"),
        realm: text(entry, "realm"),
        scopes: text(entry, "target")
            .map(|t| t.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        family_id: text(entry, "family_id"),
        expires_on: expires.and_then(time::epoch),
        expired: expires.map(|e| e <= now),
        secret: REDACTED,
    }
}

/// A field as text: strings as they are (empty ones as absent), numbers written out;
/// MSAL writes timestamps as strings, some writers as numbers.
fn text(entry: &Map<String, Value>, field: &str) -> Option<String> {
    match entry.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_unknown_fields_never_reach_the_summary() {
        let doc = TokenCacheDocument::parse(
            br#"{"RefreshToken": {"k": {"credential_type": "RefreshToken", "secret": "rt-SECRET",
                    "client_id": "c", "home_account_id": "u.t", "environment": "e",
                    "password": "pw-SECRET"}},
                 "AccessToken": {"a": {"credential_type": "AccessToken", "secret": "at-SECRET",
                    "target": "s1 s2", "expires_on": "100", "client_id": "c"}},
                 "Other": {"x": {"secret": "other-SECRET"}}}"#,
        )
        .expect("valid");
        let summary = summarize(&doc, 50);
        let shown = serde_json::to_string(&summary).expect("json");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(summary.tokens.len(), 2);
        assert_eq!(summary.unknown_sections, 1);
        let at = summary
            .tokens
            .iter()
            .find(|t| t.kind == "AccessToken")
            .expect("access token");
        assert_eq!(at.scopes, ["s1", "s2"]);
        assert_eq!(at.expired, Some(false));
        assert_eq!(at.expires_on.as_deref(), Some("1970-01-01T00:01:40Z"));
    }
}
