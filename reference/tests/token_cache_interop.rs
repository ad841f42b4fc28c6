//! The cache format against caches made by Python msal (`python/msal_cache.py`): parse,
//! modify, serialize, and Python msal still finds its own entries and ours, while every
//! section and field this crate does not own is unchanged. For a signed-in user: the
//! account, ID token, refresh token and access token a real msal device-code sign-in
//! wrote are found by this crate, and the ones this crate writes are used by msal's own
//! `get_accounts()`, `acquire_token_silent()` and `acquire_token_for_client()` (against a
//! mock authority on 127.0.0.1 that counts token requests).
#![cfg(feature = "token-cache")]

#[path = "python/venv.rs"]
mod venv;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use identity_cache_persistence::token_cache::{
    AUTHORITY_TYPE_MSSTS, AccessTokenEntry, AccessTokenQuery, AccountEntry, AppMetadataEntry,
    ClientInfo, IdTokenClaims, IdTokenEntry, RefreshTokenEntry, Secret, TokenCacheDocument,
    msal_js_access_token_key,
};
use serde_json::{Value, json};

const ENV: &str = "login.microsoftonline.com";
const VAULT: &str = "https://vault.azure.net/.default";
const STORAGE: &str = "https://storage.azure.com/.default";
const GRAPH: &str = "https://graph.microsoft.com/User.Read";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

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

/// `owned_fields` of an app-only token under Python's key: the account is `null`.
fn python_app_only(entry: &AccessTokenEntry) -> Value {
    let mut fields = owned_fields(entry);
    fields["home_account_id"] = Value::Null;
    fields
}

fn js_key(entry: &AccessTokenEntry) -> String {
    msal_js_access_token_key(
        "",
        &entry.environment,
        &entry.client_id,
        &entry.realm,
        &entry.target,
    )
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
    // App-only tokens: `null` account under Python's key (Python finds only that), and a
    // twin with `""` under MSAL JS's key (JS finds only that).
    let mut expected = before.clone();
    expected["AccessToken"][&our_key] = python_app_only(&ours);
    expected["AccessToken"][js_key(&ours)] = owned_fields(&ours);
    expected["AppMetadata"][&meta_key] = json!({"client_id": "rust-client", "environment": ENV});
    merge(
        &mut expected["AccessToken"][&app_key],
        &python_app_only(&app),
    );
    expected["AccessToken"][js_key(&app)] = owned_fields(&app);
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

    // Python msal loads the result and finds its own entries and ours; app-only tokens
    // by a `null` account, as its acquire_token_for_client() looks them up.
    let queries = json!([
        {"client_id": "client-a", "scopes": ["offline_access"]},
        {"client_id": "client-app", "scopes": [VAULT], "home_account_id": null},
        {"client_id": "rust-client", "scopes": [STORAGE], "home_account_id": null},
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

/// Runs `msal_cache.py <args>` and parses the JSON it prints.
fn python_json(python: &Path, args: &[&str]) -> Value {
    let out = venv::run(Command::new(python).arg(script()).args(args))
        .unwrap_or_else(|e| panic!("msal_cache.py {}: {e}", args[0]));
    serde_json::from_str(&out).expect("msal_cache.py prints JSON")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// A Python msal device-code sign-in: every entity of the account is found by fields,
/// for the same client id and scopes, and nothing of it answers another question.
#[test]
fn python_signed_in_account_is_found_by_our_cache() {
    let Some(python) = venv::python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("python-signed-in.json");
    let scopes = json!([GRAPH]).to_string();
    let signed_in = python_json(
        python,
        &["sign-in", path_str(&file), "client-a", "tenant-1", &scopes],
    );
    assert_eq!(signed_in["token_requests"], 1, "one device_code grant");
    let home = signed_in["home_account_id"]
        .as_str()
        .expect("home_account_id");
    let doc = TokenCacheDocument::parse(&std::fs::read(&file).expect("read")).expect("parses");

    let accounts: Vec<AccountEntry> = doc.accounts().collect();
    assert_eq!(accounts.len(), 1);
    let account = doc.find_account(home, ENV).expect("the account");
    assert_eq!(
        account.username,
        signed_in["username"].as_str().expect("username")
    );
    assert_eq!(account.realm, "tenant-1");
    assert_eq!(account.authority_type, AUTHORITY_TYPE_MSSTS);
    assert_eq!(account.account_source.as_deref(), Some(DEVICE_CODE_GRANT));

    let id_token = doc
        .find_id_token(home, ENV, "client-a", "tenant-1")
        .expect("the ID token");
    assert_eq!(id_token.secret.expose(), signed_in["id_token"]);
    let claims = IdTokenClaims::parse(id_token.secret.expose()).expect("claims");
    assert_eq!(claims.username(), Some(account.username.as_str()));
    assert_eq!(claims.local_account_id(), account.local_account_id);

    let refresh = doc
        .find_refresh_token(home, ENV, "client-a")
        .expect("the refresh token");
    assert_eq!(refresh.secret.expose(), signed_in["refresh_token"]);
    assert_eq!(doc.find_refresh_token(home, ENV, "client-b"), None);

    let wanted = [GRAPH];
    let query = AccessTokenQuery::for_account(home, ENV, "client-a", "tenant-1", &wanted);
    let access = doc
        .find_access_token(&query, now())
        .expect("the access token");
    assert_eq!(access.secret.expose(), signed_in["access_token"]);
    let app_only = AccessTokenQuery::app_only(ENV, "client-a", "tenant-1", &wanted);
    assert_eq!(
        doc.find_access_token(&app_only, now()),
        None,
        "a user's token is not app-only"
    );
}

/// What a device-code credential of ours stores after a sign-in, built with the public
/// API only: account and ID token from `client_info` and the ID token's claims.
fn our_signed_in_cache(at_expires_on: u64) -> (TokenCacheDocument, String) {
    let client_info = URL_SAFE_NO_PAD.encode(r#"{"uid":"uid-rust-user","utid":"tenant-1"}"#);
    let client_info = ClientInfo::parse(&client_info).expect("client_info");
    let id_token = format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(
            json!({"sub": "sub-rust", "oid": "uid-rust-user", "tid": "tenant-1",
                   "preferred_username": "rust.user@example.com", "exp": now() + 3600})
            .to_string()
        )
    );
    let claims = IdTokenClaims::parse(&id_token).expect("claims");
    let account =
        AccountEntry::from_sign_in(&client_info, &claims, ENV, "tenant-1", DEVICE_CODE_GRANT);
    let home = account.home_account_id.clone();
    let mut doc = TokenCacheDocument::new();
    doc.upsert_account(&account);
    doc.upsert_id_token(&IdTokenEntry {
        home_account_id: home.clone(),
        environment: ENV.into(),
        realm: "tenant-1".into(),
        client_id: "client-r".into(),
        secret: Secret::new(id_token),
    });
    doc.upsert_refresh_token(&RefreshTokenEntry {
        home_account_id: home.clone(),
        environment: ENV.into(),
        client_id: "client-r".into(),
        secret: Secret::new("rt-rust-user"),
        family_id: None,
    });
    doc.upsert_access_token(&AccessTokenEntry {
        home_account_id: home.clone(),
        environment: ENV.into(),
        client_id: "client-r".into(),
        realm: "tenant-1".into(),
        target: AccessTokenEntry::target_of(&[GRAPH, "openid", "profile", "offline_access"]),
        secret: Secret::new("at-rust-user"),
        cached_at: now(),
        expires_on: at_expires_on,
        extended_expires_on: None,
        refresh_on: None,
        token_type: "Bearer".into(),
    });
    doc.upsert_app_metadata(&AppMetadataEntry {
        client_id: "client-r".into(),
        environment: ENV.into(),
        family_id: None,
    });
    (doc, home)
}

/// Python msal's `silent` over a cache of ours: its JSON answer.
fn python_silent(python: &Path, doc: &TokenCacheDocument, dir: &Path) -> (Value, PathBuf) {
    let file = dir.join("ours.json");
    let after = dir.join("after-python.json");
    std::fs::write(&file, doc.to_bytes()).expect("write");
    let scopes = json!([GRAPH]).to_string();
    let answer = python_json(
        python,
        &[
            "silent",
            path_str(&file),
            path_str(&after),
            "client-r",
            "tenant-1",
            &scopes,
        ],
    );
    (answer, after)
}

#[test]
fn our_signed_in_cache_is_used_silently_by_python() {
    let Some(python) = venv::python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (doc, home) = our_signed_in_cache(now() + 3600);
    let (answer, _) = python_silent(python, &doc, dir.path());
    assert_eq!(
        answer["accounts"],
        json!([{"home_account_id": home, "environment": ENV, "username": "rust.user@example.com"}]),
        "get_accounts() lists our account"
    );
    assert_eq!(
        answer["result"],
        json!({"access_token": "at-rust-user", "token_source": "cache"}),
        "acquire_token_silent() serves our access token"
    );
    assert_eq!(answer["token_requests"], 0, "{answer}");
}

#[test]
fn python_redeems_our_refresh_token_and_we_find_what_it_stored() {
    let Some(python) = venv::python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (doc, home) = our_signed_in_cache(now().saturating_sub(60));
    let (answer, after) = python_silent(python, &doc, dir.path());
    assert_eq!(
        answer["result"]["token_source"], "identity_provider",
        "{answer}"
    );
    assert_eq!(answer["token_requests"], 1, "{answer}");
    let refresh = answer["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["grant_type"] == "refresh_token")
        .expect("a refresh_token grant");
    assert_eq!(
        refresh["refresh_token"], "rt-rust-user",
        "our refresh token was sent"
    );
    assert_eq!(refresh["client_id"], "client-r");

    // Python stored the rotated refresh token in our entity and a new access token.
    let doc = TokenCacheDocument::parse(&std::fs::read(after).expect("read")).expect("parses");
    let rt = doc
        .find_refresh_token(&home, ENV, "client-r")
        .expect("refresh token");
    assert_eq!(rt.secret.expose(), "rt-python-refreshed");
    assert_eq!(
        doc.as_json()["RefreshToken"].as_object().map(|m| m.len()),
        Some(1)
    );
    let wanted = [GRAPH];
    let query = AccessTokenQuery::for_account(&home, ENV, "client-r", "tenant-1", &wanted);
    let at = doc.find_access_token(&query, now()).expect("access token");
    assert_eq!(at.secret.expose(), "at-python-refreshed");
}

#[test]
fn our_app_only_token_is_used_by_python_acquire_token_for_client() {
    let Some(python) = venv::python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("app-only.json");
    let mut doc = TokenCacheDocument::new();
    let now = now();
    doc.upsert_access_token(&AccessTokenEntry {
        home_account_id: String::new(),
        environment: ENV.into(),
        client_id: "client-app".into(),
        realm: "tenant-1".into(),
        target: AccessTokenEntry::target_of(&[VAULT]),
        secret: Secret::new("at-rust-app"),
        cached_at: now,
        expires_on: now + 3600,
        extended_expires_on: None,
        refresh_on: None,
        token_type: "Bearer".into(),
    });
    std::fs::write(&file, doc.to_bytes()).expect("write");
    let scopes = json!([VAULT]).to_string();
    let answer = python_json(
        python,
        &[
            "for-client",
            path_str(&file),
            "client-app",
            "tenant-1",
            &scopes,
        ],
    );
    assert_eq!(
        answer["result"],
        json!({"access_token": "at-rust-app", "token_source": "cache"}),
        "{answer}"
    );
    assert_eq!(answer["token_requests"], 0, "{answer}");
}
