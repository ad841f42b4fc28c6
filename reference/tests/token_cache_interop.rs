//! The cache format against caches made by Python msal (`python/msal_cache.py`): parse,
//! modify, serialize, and Python msal still finds its own entries and ours, while every
//! section and field this crate does not own is unchanged.
#![cfg(feature = "token-cache")]

#[path = "python/venv.rs"]
mod venv;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use identity_cache_persistence::token_cache::{
    AccessTokenEntry, AccessTokenQuery, AppMetadataEntry, Secret, TokenCacheDocument,
};
use serde_json::{Value, json};

const ENV: &str = "login.microsoftonline.com";
const VAULT: &str = "https://vault.azure.net/.default";
const STORAGE: &str = "https://storage.azure.com/.default";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/msal_cache.py")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn generate(python: &Path, kind: &str, out: &Path) -> Vec<u8> {
    venv::run(
        Command::new(python)
            .arg(script())
            .args(["generate", kind])
            .arg(out),
    )
    .unwrap_or_else(|e| panic!("generate {kind}: {e}"));
    std::fs::read(out).expect("read generated cache")
}

/// The secrets Python msal's `search()` finds for each query.
fn python_search(python: &Path, file: &Path, queries: &Value) -> Vec<Vec<String>> {
    let out = venv::run(
        Command::new(python)
            .arg(script())
            .arg("search")
            .arg(file)
            .arg(queries.to_string()),
    )
    .unwrap_or_else(|e| panic!("python search: {e}"));
    serde_json::from_str(&out).expect("search prints JSON")
}

/// The fields `upsert_access_token` owns, as it writes them, for the expected document.
fn owned_fields(entry: &AccessTokenEntry) -> Value {
    json!({
        "credential_type": "AccessToken",
        "home_account_id": entry.home_account_id,
        "environment": entry.environment,
        "client_id": entry.client_id,
        "realm": entry.realm,
        "target": entry.target,
        "secret": entry.secret.expose(),
        "cached_at": entry.cached_at.to_string(),
        "expires_on": entry.expires_on.to_string(),
        "extended_expires_on": entry.extended_expires_on.unwrap_or(entry.expires_on).to_string(),
        "token_type": entry.token_type,
    })
}

fn merge(into: &mut Value, fields: &Value) {
    let (Some(into), Some(fields)) = (into.as_object_mut(), fields.as_object()) else {
        panic!("objects expected");
    };
    for (k, v) in fields {
        into.insert(k.clone(), v.clone());
    }
    into.remove("refresh_on");
}

fn round_trip(kind: &str) {
    let Some(python) = venv::python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let before_file = dir.path().join("before.json");
    let after_file = dir.path().join("after.json");
    let before_bytes = generate(python, kind, &before_file);
    let before: Value = serde_json::from_slice(&before_bytes).expect("python wrote JSON");
    let now = now();

    let started = Instant::now();
    let mut doc = TokenCacheDocument::parse(&before_bytes).expect("python's cache parses");
    let parsed_in = started.elapsed();

    // 1. A new app-only token of ours.
    let ours = AccessTokenEntry {
        home_account_id: String::new(),
        environment: ENV.into(),
        client_id: "rust-client".into(),
        realm: "tenant-1".into(),
        target: AccessTokenEntry::target_of(&[STORAGE]),
        secret: Secret::new("at-rust-new"),
        cached_at: now,
        expires_on: now + 3600,
        extended_expires_on: None,
        refresh_on: None,
        token_type: "Bearer".into(),
    };
    let our_key = doc.upsert_access_token(&ours);
    let meta = AppMetadataEntry {
        client_id: "rust-client".into(),
        environment: ENV.into(),
        family_id: None,
    };
    let meta_key = doc.upsert_app_metadata(&meta);

    // 2. Python's app-only token, found by fields and refreshed in place: same key.
    let scopes = [VAULT];
    let query = AccessTokenQuery::app_only(ENV, "client-app", "tenant-1", &scopes);
    let mut app = doc
        .find_access_token(&query, now)
        .expect("finds python's app-only token");
    let app_key = app.key();
    assert!(
        before["AccessToken"].get(&app_key).is_some(),
        "our key {app_key:?} is the one Python composed"
    );
    app.secret = Secret::new("at-rust-refreshed");
    app.expires_on = now + 7200;
    app.extended_expires_on = None;
    assert_eq!(doc.upsert_access_token(&app), app_key);

    // 3. Python's user token that carries foreign fields, refreshed in place.
    let (user_key, mut user) = doc
        .access_tokens()
        .find(|(key, _)| before["AccessToken"][*key].get("x_foreign_field").is_some())
        .map(|(key, entry)| (key.to_owned(), entry))
        .expect("a user token with foreign fields");
    assert_eq!(user.key(), user_key, "our key is the one Python composed");
    user.secret = Secret::new("at-rust-user");
    user.cached_at = now;
    assert_eq!(doc.upsert_access_token(&user), user_key);

    let started = Instant::now();
    let after_bytes = doc.to_bytes();
    let serialized_in = started.elapsed();
    std::fs::write(&after_file, &after_bytes).expect("write");
    eprintln!(
        "{kind}: {} bytes parsed in {parsed_in:?}, {} bytes serialized in {serialized_in:?}",
        before_bytes.len(),
        after_bytes.len()
    );

    // Everything not ours is equal, as JSON, before and after.
    let mut expected = before.clone();
    expected["AccessToken"][&our_key] = owned_fields(&ours);
    expected["AppMetadata"][&meta_key] = json!({"client_id": "rust-client", "environment": ENV});
    let mut app_fields = owned_fields(&app);
    // Python's null account of app-only tokens stays null, so Python still finds it.
    app_fields
        .as_object_mut()
        .expect("object")
        .remove("home_account_id");
    merge(&mut expected["AccessToken"][&app_key], &app_fields);
    merge(
        &mut expected["AccessToken"][&user_key],
        &owned_fields(&user),
    );
    let after: Value = serde_json::from_slice(&after_bytes).expect("we wrote JSON");
    assert_eq!(
        after["Unrecognized_Entity"], before["Unrecognized_Entity"],
        "unknown section kept"
    );
    assert_eq!(
        after["AccessToken"][&user_key]["x_foreign_object"],
        before["AccessToken"][&user_key]["x_foreign_object"],
        "unknown field kept on an entry we updated"
    );
    assert!(
        after == expected,
        "{kind}: the document differs beyond our edits"
    );

    // Python msal loads the result and finds its own entries and ours.
    let queries = json!([
        {"client_id": "client-a", "scopes": ["offline_access"]},
        {"client_id": "client-app", "scopes": [VAULT], "home_account_id": null},
        {"client_id": "rust-client", "scopes": [STORAGE]},
    ]);
    let found_before = python_search(python, &before_file, &queries);
    let found_after = python_search(python, &after_file, &queries);
    let user_secrets_before: Vec<String> = found_before[0]
        .iter()
        .map(|s| {
            if before["AccessToken"][&user_key]["secret"] == s.as_str() {
                "at-rust-user".to_owned()
            } else {
                s.clone()
            }
        })
        .collect();
    let mut user_secrets_before = user_secrets_before;
    user_secrets_before.sort();
    assert!(!found_after[0].is_empty());
    assert_eq!(found_after[0], user_secrets_before, "python's user tokens");
    assert_eq!(
        found_after[1],
        ["at-rust-refreshed"],
        "python's app-only token, refreshed by us"
    );
    assert_eq!(found_after[2], ["at-rust-new"], "our new token");
}

#[test]
fn python_cache_with_one_account_round_trips() {
    round_trip("one-account");
}

#[test]
fn python_cache_with_several_accounts_round_trips() {
    round_trip("several-accounts");
}

#[test]
fn python_cache_of_one_mebibyte_round_trips() {
    round_trip("large");
}
