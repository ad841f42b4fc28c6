//! `DeviceCodeCredential` and Python msal sharing one cache file, both ways (issue 8,
//! item 4): an account Python msal signed in with a device code is used silently by the
//! Rust credential, and an account the Rust credential signed in is used silently by
//! Python msal's `acquire_token_silent`. "Silently" is measured: each side talks to a mock
//! authority on 127.0.0.1 that counts token requests, and the count is zero.
//!
//! Both sides must name the authority the same way, since MSAL matches entries by
//! `environment` (the authority's host name, without port). The Rust credential is
//! pointed at its mock authority `http://127.0.0.1:<port>`; Python msal, which accepts
//! only https authorities, is given `https://127.0.0.1:1` and an http_client that sends
//! those requests to its own mock authority (`python/msal_cache.py`). Both then write and
//! look up `environment: "127.0.0.1"`.
#![cfg(feature = "device-code")]

mod support;
#[path = "python/venv.rs"]
mod venv;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
};

use azure_core::credentials::TokenCredential;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use identity_cache_persistence::{
    FilePersistence,
    azure::device_code::{DeviceCodeCredential, DeviceCodeCredentialOptions, DeviceCodePrompt},
    token_cache::Quarantine,
};
use serde_json::{Value, json};
use support::authority::{Request, Response, Server};

const TENANT: &str = "00000000-0000-0000-0000-0000000000aa";
const CLIENT: &str = "00000000-0000-0000-0000-000000000002";
const SCOPE: &str = "https://vault.azure.net/.default";
/// What Python msal is told its authority host is (see the module comment).
const PYTHON_AUTHORITY: &str = "https://127.0.0.1:1";

/// The Rust credential's mock authority: a device-code sign-in that succeeds at the first
/// poll, and refreshes that succeed. Everything it is asked is logged by the server.
fn mock_authority() -> Server {
    Server::start(|request: &Request| {
        let tenant_path = format!("/{TENANT}/oauth2/v2.0/");
        let Some(endpoint) = request.path.strip_prefix(&tenant_path) else {
            return Response::oauth_error("invalid_request");
        };
        match (endpoint, request.param("grant_type")) {
            ("devicecode", _) => Response::ok(
                json!({"device_code": "dc-rust", "user_code": "RUST-1",
                       "verification_uri": "https://microsoft.com/devicelogin",
                       "expires_in": 900, "interval": 0, "message": "sign in"})
                .to_string(),
            ),
            ("token", Some("urn:ietf:params:oauth:grant-type:device_code"))
            | ("token", Some("refresh_token")) => tokens(),
            _ => Response::oauth_error("unsupported_grant_type"),
        }
    })
}

/// Microsoft Entra's answer to a token request, for the user `uid-rust-user`.
fn tokens() -> Response {
    let claims = json!({"sub": "sub-rust", "oid": "uid-rust-user", "tid": TENANT,
                        "preferred_username": "rust.user@example.com", "exp": 4_102_444_800u64});
    let id_token = format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    Response::ok(
        json!({"token_type": "Bearer", "scope": format!("{SCOPE} openid profile"),
               "expires_in": 3600, "ext_expires_in": 3600,
               "access_token": "at-rust-signin", "refresh_token": "rt-rust-signin",
               "id_token": id_token,
               "client_info": URL_SAFE_NO_PAD.encode(
                   format!(r#"{{"uid":"uid-rust-user","utid":"{TENANT}"}}"#))})
        .to_string(),
    )
}

/// A credential on the file cache `cache`, against `authority`, recording its prompts.
fn credential(
    authority: &Server,
    cache: &Path,
    prompts: Arc<Mutex<Vec<String>>>,
) -> Arc<DeviceCodeCredential> {
    let options = DeviceCodeCredentialOptions {
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT.into()),
        authority_host: Some(authority.url()),
        user_prompt_callback: Some(Arc::new(move |prompt: &DeviceCodePrompt| {
            prompts
                .lock()
                .expect("prompts")
                .push(prompt.user_code.clone());
        })),
        ..Default::default()
    };
    DeviceCodeCredential::with_persistence(
        options,
        Box::new(FilePersistence::new(cache).expect("file persistence")),
        Quarantine::beside(cache),
    )
    .expect("credential")
}

fn get_token(credential: &DeviceCodeCredential) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(credential.get_token(&[SCOPE], None))
        .expect("token")
        .token
        .secret()
        .to_owned()
}

/// Runs `python/msal_cache.py <args>` with Python msal's authority host at 127.0.0.1,
/// its mock authority issuing access tokens valid `expires_in` seconds.
fn msal_cache(python: &Path, expires_in: u64, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/msal_cache.py");
    let out = venv::run(
        Command::new(python)
            .arg(script)
            .args(args)
            .env("MSAL_CACHE_AUTHORITY", PYTHON_AUTHORITY)
            .env("MSAL_CACHE_EXPIRES_IN", expires_in.to_string()),
    )
    .unwrap_or_else(|e| panic!("msal_cache.py {}: {e}", args[0]));
    serde_json::from_str(&out).expect("msal_cache.py prints JSON")
}

fn cache_path(dir: &Path) -> (PathBuf, String) {
    let cache = dir.join("msal.cache");
    let text = cache.to_str().expect("UTF-8 temp path").to_owned();
    (cache, text)
}

#[test]
fn python_signed_in_account_is_used_silently_by_the_rust_credential() {
    let Some(python) = venv::python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (cache, cache_text) = cache_path(dir.path());
    let scopes = json!([SCOPE]).to_string();
    let signed_in = msal_cache(
        python,
        3600,
        &["sign-in", &cache_text, CLIENT, TENANT, &scopes],
    );
    assert_eq!(
        signed_in["token_requests"], 1,
        "python signed in: {signed_in}"
    );

    let authority = mock_authority();
    let prompts = Arc::default();
    let token = get_token(&credential(&authority, &cache, Arc::clone(&prompts)));
    assert_eq!(token, signed_in["access_token"].as_str().expect("token"));
    assert_eq!(authority.requests().len(), 0, "no request to the authority");
    assert!(prompts.lock().expect("prompts").is_empty(), "no prompt");
}

#[test]
fn python_refresh_token_is_redeemed_by_the_rust_credential_without_a_prompt() {
    let Some(python) = venv::python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (cache, cache_text) = cache_path(dir.path());
    let scopes = json!([SCOPE]).to_string();
    // An access token inside the credential's refresh margin: it must refresh.
    let signed_in = msal_cache(
        python,
        60,
        &["sign-in", &cache_text, CLIENT, TENANT, &scopes],
    );

    let authority = mock_authority();
    let prompts = Arc::default();
    let token = get_token(&credential(&authority, &cache, Arc::clone(&prompts)));
    assert_eq!(token, "at-rust-signin", "the refreshed token");
    let requests = authority.requests();
    assert_eq!(requests.len(), 1, "one refresh request: {requests:?}");
    assert_eq!(requests[0].param("grant_type"), Some("refresh_token"));
    assert_eq!(
        requests[0].param("refresh_token"),
        signed_in["refresh_token"].as_str(),
        "Python's refresh token was redeemed"
    );
    assert!(prompts.lock().expect("prompts").is_empty(), "no prompt");
}

#[test]
fn rust_signed_in_account_is_used_silently_by_python() {
    let Some(python) = venv::python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (cache, cache_text) = cache_path(dir.path());
    let authority = mock_authority();
    let prompts = Arc::default();
    let token = get_token(&credential(&authority, &cache, Arc::clone(&prompts)));
    assert_eq!(token, "at-rust-signin");
    assert_eq!(*prompts.lock().expect("prompts"), ["RUST-1"], "one sign-in");

    let after = dir.path().join("after-python.json");
    let scopes = json!([SCOPE]).to_string();
    let answer = msal_cache(
        python,
        3600,
        &[
            "silent",
            &cache_text,
            after.to_str().expect("UTF-8"),
            CLIENT,
            TENANT,
            &scopes,
        ],
    );
    assert_eq!(
        answer["accounts"],
        json!([{"home_account_id": format!("uid-rust-user.{TENANT}"),
                "environment": "127.0.0.1", "username": "rust.user@example.com"}]),
        "get_accounts() lists the account the Rust credential signed in"
    );
    assert_eq!(
        answer["result"],
        json!({"access_token": "at-rust-signin", "token_source": "cache"}),
        "acquire_token_silent() serves the Rust credential's access token"
    );
    assert_eq!(answer["token_requests"], 0, "{answer}");
}
