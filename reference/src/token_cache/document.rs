//! [`TokenCacheDocument`]: the whole cache as a JSON tree, edited in place.

use std::fmt;

use serde_json::{Map, Value};

use super::{
    entries::{AccessTokenEntry, AccessTokenQuery, AppMetadataEntry, Section},
    keys::msal_js_access_token_key,
};

/// The unified-schema cache document.
///
/// Kept as the `serde_json` tree it was parsed into; reads go through typed views, and
/// writes change only the fields this crate owns inside one entry. So:
///
/// - unknown top-level sections are written back unchanged;
/// - unknown fields of an entity are written back unchanged, also in entries this crate
///   updates;
/// - entries are never moved to another key, and entries this crate cannot read (wrong
///   types, PoP tokens, other SDKs' extensions) are left as they are;
/// - values equal as JSON before and after; key order and whitespace are not kept (every
///   MSAL reader is indifferent to them: Python writes 4-space indented JSON, MSAL Node
///   compact JSON).
#[derive(Clone, Default, PartialEq)]
pub struct TokenCacheDocument {
    root: Map<String, Value>,
}

/// Why a stored blob is not a usable cache document. Messages name the defect and its
/// position, never the content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptCache {
    /// A 0-byte blob.
    Empty,
    /// The bytes are not UTF-8; `valid_up_to` bytes are.
    NotUtf8 {
        /// The length of the valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// Not JSON, or truncated JSON.
    NotJson {
        /// What the JSON parser reported, without content: e.g. "EOF while parsing".
        reason: String,
        /// 1-based line of the defect.
        line: usize,
        /// 1-based column of the defect.
        column: usize,
    },
    /// Valid JSON, but not an object at the top.
    NotAnObject,
    /// A known section (e.g. `AccessToken`) is not an object of entities.
    SectionNotAnObject(&'static str),
}

impl fmt::Display for CorruptCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptCache::Empty => f.write_str("the token cache is 0 bytes"),
            CorruptCache::NotUtf8 { valid_up_to } => write!(
                f,
                "the token cache is not UTF-8 (invalid byte at offset {valid_up_to})"
            ),
            CorruptCache::NotJson {
                reason,
                line,
                column,
            } => write!(
                f,
                "the token cache is not valid JSON: {reason} at line {line} column {column}"
            ),
            CorruptCache::NotAnObject => f.write_str("the token cache is not a JSON object"),
            CorruptCache::SectionNotAnObject(section) => {
                write!(f, "the token cache section {section:?} is not an object")
            }
        }
    }
}

impl std::error::Error for CorruptCache {}

impl TokenCacheDocument {
    /// An empty cache, `{}`.
    pub fn new() -> Self {
        TokenCacheDocument::default()
    }

    /// Parses a stored blob.
    ///
    /// - A JSON object whose known sections are objects: `Ok`. Entities inside them are
    ///   not checked here; one this crate cannot read is skipped by lookups and kept.
    /// - Anything else (0 bytes, not UTF-8, not JSON or truncated, not an object, a known
    ///   section of another type): `Err` saying which, never a panic, whatever the bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, CorruptCache> {
        if bytes.is_empty() {
            return Err(CorruptCache::Empty);
        }
        let text = std::str::from_utf8(bytes).map_err(|e| CorruptCache::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| CorruptCache::NotJson {
            reason: syntax_reason(&e),
            line: e.line(),
            column: e.column(),
        })?;
        let Value::Object(root) = value else {
            return Err(CorruptCache::NotAnObject);
        };
        for section in Section::ALL {
            match root.get(section.name()) {
                None | Some(Value::Object(_)) => {}
                Some(_) => return Err(CorruptCache::SectionNotAnObject(section.name())),
            }
        }
        Ok(TokenCacheDocument { root })
    }

    /// The document as compact JSON, ready to save.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing a Map of Values cannot fail: every key is a string.
        serde_json::to_vec(&self.root).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// The whole tree, for callers that need what this module does not model.
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.root
    }

    /// The top-level section names, known and unknown.
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.root.keys().map(String::as_str)
    }

    /// The entities of a known section that are JSON objects, with their keys.
    pub fn entries(&self, section: Section) -> impl Iterator<Item = (&str, &Map<String, Value>)> {
        self.root
            .get(section.name())
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|entries| entries.iter())
            .filter_map(|(key, value)| Some((key.as_str(), value.as_object()?)))
    }

    /// Every readable bearer access token, with its key.
    pub fn access_tokens(&self) -> impl Iterator<Item = (&str, AccessTokenEntry)> {
        self.entries(Section::AccessToken)
            .filter_map(|(key, object)| Some((key, AccessTokenEntry::from_object(object)?)))
    }

    /// The access token matching `query` that expires latest, if it expires after
    /// `valid_after` (epoch seconds; callers pass "now plus a refresh margin").
    ///
    /// Entries are matched by their fields, whatever their key, so tokens written by
    /// MSAL JS (whose keys differ) or by MSAL Python are found as well as ours.
    pub fn find_access_token(
        &self,
        query: &AccessTokenQuery<'_>,
        valid_after: u64,
    ) -> Option<AccessTokenEntry> {
        self.access_tokens()
            .map(|(_, entry)| entry)
            .filter(|entry| entry.expires_on > valid_after && query.matches(entry))
            .max_by_key(|entry| entry.expires_on)
    }

    /// Adds `entry` under its key, or updates the entity already under that key in place,
    /// keeping its fields this crate does not know. Returns the key.
    ///
    /// An app-only token (empty `home_account_id`) is written twice, because MSAL Python
    /// and MSAL JS each find app-only tokens only by their own spelling of "no account"
    /// (Python: `search()` compares `home_account_id` to `None` for equality; JS:
    /// `credentialMatchesFilter` requires the string `""`), and one entity cannot hold
    /// both:
    /// - under [`AccessTokenEntry::key`] (MSAL Python's key) with `home_account_id: null`,
    ///   replacing Python's own entity for the same token;
    /// - under [`msal_js_access_token_key`] with `""`, replacing MSAL JS's own entity.
    ///
    /// Each SDK skips the other's spelling, so neither sees two matches (MSAL JS fails on
    /// two). This crate reads both. The returned key is Python's.
    pub fn upsert_access_token(&mut self, entry: &AccessTokenEntry) -> String {
        let key = entry.key();
        let python = self.entity_mut(Section::AccessToken, &key);
        entry.write_into(python);
        if entry.home_account_id.is_empty() {
            python.insert("home_account_id".to_owned(), Value::Null);
            let js_key = msal_js_access_token_key(
                "",
                &entry.environment,
                &entry.client_id,
                &entry.realm,
                &entry.target,
            );
            entry.write_into(self.entity_mut(Section::AccessToken, &js_key));
        }
        key
    }

    /// Adds or updates an `AppMetadata` entity the same way. Returns the key.
    pub fn upsert_app_metadata(&mut self, entry: &AppMetadataEntry) -> String {
        let key = entry.key();
        entry.write_into(self.entity_mut(Section::AppMetadata, &key));
        key
    }

    /// The entity object under `key` in `section`, created empty when absent (or when
    /// something that is not an object is there: an entity of the wrong type cannot be
    /// updated in place, and the key is ours to write).
    pub(super) fn entity_mut(&mut self, section: Section, key: &str) -> &mut Map<String, Value> {
        let section = self
            .root
            .entry(section.name())
            .or_insert_with(|| Value::Object(Map::new()));
        if !section.is_object() {
            // `parse` refuses such documents, so only a caller editing `as_json` output
            // by other means could get here; replacing keeps the document well-formed.
            *section = Value::Object(Map::new());
        }
        let Value::Object(entries) = section else {
            unreachable!("made an object above")
        };
        let entity = entries
            .entry(key)
            .or_insert_with(|| Value::Object(Map::new()));
        if !entity.is_object() {
            *entity = Value::Object(Map::new());
        }
        match entity {
            Value::Object(object) => object,
            _ => unreachable!("made an object above"),
        }
    }

    /// Removes the entity under `key` in `section`, if there is one.
    pub(super) fn remove_entity(&mut self, section: Section, key: &str) {
        if let Some(Value::Object(entries)) = self.root.get_mut(section.name()) {
            entries.remove(key);
        }
    }
}

impl fmt::Debug for TokenCacheDocument {
    /// Section names and entry counts only: the document holds secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.root {
            map.entry(name, &value.as_object().map_or(0, serde_json::Map::len));
        }
        map.finish()
    }
}

/// The parser's description of a syntax error, without the content it quotes: serde_json
/// messages end in " at line L column C", which is reported separately.
fn syntax_reason(err: &serde_json::Error) -> String {
    let message = err.to_string();
    let reason = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(reason, _)| reason);
    // Only syntax errors reach here (parsing into a Value has no type errors), and their
    // messages quote no input; bound the length all the same.
    reason.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token_cache::Secret;

    fn token(expires_on: u64) -> AccessTokenEntry {
        AccessTokenEntry {
            home_account_id: String::new(),
            environment: "login.microsoftonline.com".into(),
            client_id: "c".into(),
            realm: "t".into(),
            target: "s".into(),
            secret: Secret::new(format!("at-{expires_on}")),
            cached_at: 1,
            expires_on,
            extended_expires_on: None,
            refresh_on: None,
            token_type: "Bearer".into(),
        }
    }

    #[test]
    fn corrupt_inputs_are_errors_not_panics() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "0 bytes"),
            (b"\xff\xfe{}", "not UTF-8"),
            (br#"{"AccessToken": {"#, "EOF while parsing"),
            (b"[1, 2]", "not a JSON object"),
            (b"\"x\"", "not a JSON object"),
            (
                br#"{"AccessToken": []}"#,
                "\"AccessToken\" is not an object",
            ),
            (br#"{"Account": "x"}"#, "\"Account\" is not an object"),
        ];
        for (bytes, says) in cases {
            let err = TokenCacheDocument::parse(bytes).expect_err("corrupt");
            assert!(err.to_string().contains(says), "{err} should say {says}");
        }
    }

    #[test]
    fn syntax_errors_do_not_quote_the_input() {
        let err = TokenCacheDocument::parse(br#"{"secret": "hunter2" x}"#).expect_err("corrupt");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn upsert_keeps_unknown_fields_and_sections() {
        let mut doc = TokenCacheDocument::parse(
            br#"{"Other": {"k": [1, {"a": null}]},
                 "AccessToken": {"-login.microsoftonline.com-accesstoken-c-t-s":
                    {"credential_type": "AccessToken", "secret": "old", "expires_on": "5",
                     "environment": "login.microsoftonline.com", "client_id": "c",
                     "realm": "t", "target": "s", "refresh_on": "3", "foreign": {"x": 1}}}}"#,
        )
        .expect("valid");
        let key = doc.upsert_access_token(&token(100));
        let entity = &doc.as_json()["AccessToken"][&key];
        assert_eq!(entity["foreign"], serde_json::json!({"x": 1}));
        assert_eq!(entity["secret"], "at-100");
        assert_eq!(entity["expires_on"], "100");
        assert!(
            entity.get("refresh_on").is_none(),
            "stale refresh_on removed"
        );
        assert_eq!(
            doc.as_json()["Other"],
            serde_json::json!({"k": [1, {"a": null}]})
        );
    }

    #[test]
    fn find_takes_the_latest_unexpired_match_under_any_key() {
        let mut doc = TokenCacheDocument::new();
        doc.upsert_access_token(&token(50));
        let mut js = serde_json::Map::new();
        token(200).write_into(&mut js);
        doc.entity_mut(Section::AccessToken, "js-style-key--")
            .extend(js);
        let query = AccessTokenQuery::app_only("login.microsoftonline.com", "c", "t", &["s"]);
        assert_eq!(
            doc.find_access_token(&query, 10).map(|e| e.expires_on),
            Some(200)
        );
        assert_eq!(doc.find_access_token(&query, 200), None);
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut doc = TokenCacheDocument::new();
        doc.upsert_access_token(&token(7));
        assert!(!format!("{doc:?}").contains("at-7"));
    }
}
