//! Snapshots (insta) of every byte this crate writes: the cache JSON after representative
//! operations, the lock file, and the names and modes of the files the file plugin and
//! the corrupt-cache recovery create. A change to an on-disk format shows up as a snapshot
//! diff in review. With `CI=true` insta fails on a snapshot that is new or differs
//! (nothing is written), so the `.snap` files in `snapshots/` are the reviewed truth.
//!
//! Volatile values (timestamps, secrets, pids, paths) are redacted, but only after their
//! shape is checked, so a redaction never hides a wrong value.
#![cfg(all(unix, feature = "token-cache"))]

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use identity_cache_persistence::{
    CachePersistence, FilePersistence,
    lock::FileLock,
    token_cache::{
        AccessTokenEntry, AccountEntry, AppMetadataEntry, ClientInfo, IdTokenClaims, IdTokenEntry,
        Quarantine, RefreshTokenEntry, Secret, TokenCacheDocument, decode_or_recover,
    },
};
use insta::{assert_json_snapshot, assert_snapshot, dynamic_redaction};
use serde_json::Value;

const ENV: &str = "login.microsoftonline.com";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A token that looks like a JWT, different on every run (so redaction is needed).
fn jwt_like() -> String {
    let random: String = (0..24).map(|_| fastrand::alphanumeric()).collect();
    format!("eyJ0eXAiOiJKV1QifQ.{random}.c2ln")
}

fn is_jwt_like(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Epoch seconds as MSAL writes them: a decimal string, within a day of now.
fn is_recent_epoch_seconds(s: &str) -> bool {
    let now = now();
    s.bytes().all(|b| b.is_ascii_digit())
        && s.parse::<u64>()
            .is_ok_and(|t| t + 86_400 > now && t < now + 86_400)
}

fn redact_epoch(
    value: insta::internals::Content,
    path: insta::internals::ContentPath<'_>,
) -> String {
    let s = value
        .as_str()
        .unwrap_or_else(|| panic!("{path}: not a string"));
    assert!(
        is_recent_epoch_seconds(s),
        "{path}: {s:?} is not epoch seconds"
    );
    "[epoch seconds]".to_owned()
}

fn redact_secret(
    value: insta::internals::Content,
    path: insta::internals::ContentPath<'_>,
) -> String {
    let s = value
        .as_str()
        .unwrap_or_else(|| panic!("{path}: not a string"));
    assert!(is_jwt_like(s), "{path}: not a token");
    "[token]".to_owned()
}

/// Snapshots a cache document with its volatile values redacted after a shape check.
macro_rules! assert_cache_snapshot {
    ($name:expr, $doc:expr) => {
        let value: Value = serde_json::from_slice(&$doc).expect("cache is JSON");
        assert_json_snapshot!($name, value, {
            ".AccessToken.*.secret" => dynamic_redaction(redact_secret),
            ".AccessToken.*.cached_at" => dynamic_redaction(redact_epoch),
            ".AccessToken.*.expires_on" => dynamic_redaction(redact_epoch),
            ".AccessToken.*.extended_expires_on" => dynamic_redaction(redact_epoch),
            ".AccessToken.*.refresh_on" => dynamic_redaction(redact_epoch),
            ".RefreshToken.*.secret" => dynamic_redaction(redact_secret),
            ".RefreshToken.*.last_modification_time" => dynamic_redaction(redact_epoch),
            ".IdToken.*.secret" => dynamic_redaction(redact_secret),
        });
    };
}

fn app_token(scopes: &[&str], lifetime: u64) -> AccessTokenEntry {
    let now = now();
    AccessTokenEntry {
        home_account_id: String::new(),
        environment: ENV.into(),
        client_id: "00000000-0000-0000-0000-00000000c11e".into(),
        realm: "00000000-0000-0000-0000-0000000te4a7".into(),
        target: AccessTokenEntry::target_of(scopes),
        secret: Secret::new(jwt_like()),
        cached_at: now,
        expires_on: now + lifetime,
        extended_expires_on: None,
        refresh_on: Some(now + lifetime / 2),
        token_type: "Bearer".into(),
    }
}

fn metadata() -> AppMetadataEntry {
    AppMetadataEntry {
        client_id: "00000000-0000-0000-0000-00000000c11e".into(),
        environment: ENV.into(),
        family_id: None,
    }
}

#[test]
fn cache_after_the_first_token() {
    let mut doc = TokenCacheDocument::new();
    doc.upsert_access_token(&app_token(&["https://vault.azure.net/.default"], 3600));
    doc.upsert_app_metadata(&metadata());
    let bytes = doc.to_bytes();
    // Compact JSON, as MSAL Node writes it; the snapshot shows it pretty-printed.
    let reparsed: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(serde_json::to_vec(&reparsed).expect("json"), bytes);
    assert_cache_snapshot!("cache_after_the_first_token", bytes);
}

#[test]
fn cache_after_a_refresh_and_a_second_scope() {
    let mut doc = TokenCacheDocument::new();
    doc.upsert_access_token(&app_token(&["https://vault.azure.net/.default"], 3600));
    doc.upsert_app_metadata(&metadata());
    // Refreshing the same scopes replaces the entry (same key) ...
    doc.upsert_access_token(&app_token(&["https://vault.azure.net/.default"], 7200));
    // ... and other scopes get their own entry.
    doc.upsert_access_token(&app_token(
        &[
            "https://storage.azure.com/.default",
            "https://storage.azure.com/user_impersonation",
        ],
        3600,
    ));
    doc.upsert_app_metadata(&metadata());
    // Two tokens, each app-only token under Python's key (account `null`) and under MSAL
    // JS's key (account `""`): each SDK finds only its own spelling.
    assert_eq!(doc.access_tokens().count(), 4);
    assert_cache_snapshot!("cache_after_a_refresh_and_a_second_scope", doc.to_bytes());
}

#[test]
fn cache_after_a_user_signs_in() {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    // What a device-code sign-in stores: account, ID token, refresh token, access token.
    let client_info = URL_SAFE_NO_PAD.encode(r#"{"uid":"uid","utid":"utid"}"#);
    let client_info = ClientInfo::parse(&client_info).expect("client_info");
    let claims = URL_SAFE_NO_PAD.encode(
        r#"{"sub":"sub","oid":"uid","tid":"utid","preferred_username":"user@example.com"}"#,
    );
    let id_token = format!("eyJ0eXAiOiJKV1QifQ.{claims}.c2ln");
    let claims = IdTokenClaims::parse(&id_token).expect("claims");
    let account = AccountEntry::from_sign_in(
        &client_info,
        &claims,
        ENV,
        "utid",
        "urn:ietf:params:oauth:grant-type:device_code",
    );
    let home = account.home_account_id.clone();
    let client_id = metadata().client_id;
    let mut doc = TokenCacheDocument::new();
    doc.upsert_account(&account);
    doc.upsert_id_token(&IdTokenEntry {
        home_account_id: home.clone(),
        environment: ENV.into(),
        realm: "utid".into(),
        client_id: client_id.clone(),
        secret: Secret::new(id_token),
    });
    doc.upsert_refresh_token(&RefreshTokenEntry {
        home_account_id: home.clone(),
        environment: ENV.into(),
        client_id: client_id.clone(),
        secret: Secret::new(jwt_like()),
        family_id: None,
    });
    let mut token = app_token(&["https://graph.microsoft.com/User.Read"], 3600);
    token.home_account_id = home;
    token.realm = "utid".into();
    doc.upsert_access_token(&token);
    doc.upsert_app_metadata(&metadata());
    assert_cache_snapshot!("cache_after_a_user_signs_in", doc.to_bytes());
}

#[test]
fn cache_shared_with_another_sdk_after_our_write() {
    // What MSAL Node and Python leave: a section we do not know, an entity with a field we
    // do not know, an account, a refresh token.
    let foreign = br#"{
        "Account": {"uid.utid-login.microsoftonline.com-utid": {"home_account_id": "uid.utid",
            "environment": "login.microsoftonline.com", "realm": "utid", "local_account_id": "uid",
            "username": "user@example.com", "authority_type": "MSSTS", "tenantProfiles": ["{}"]}},
        "RefreshToken": {"uid.utid-login.microsoftonline.com-refreshtoken-c----": {
            "home_account_id": "uid.utid", "environment": "login.microsoftonline.com",
            "credential_type": "RefreshToken", "client_id": "c", "secret": "eyJ0eXAiOiJKV1QifQ.Zml4dHVyZQ.c2ln"}},
        "Unrecognized_Entity": {"k": {"field": "value"}},
        "AppMetadata": {"appmetadata-login.microsoftonline.com-00000000-0000-0000-0000-00000000c11e": {
            "client_id": "00000000-0000-0000-0000-00000000c11e", "environment": "login.microsoftonline.com",
            "family_id": "1", "x_other_sdk": true}}
    }"#;
    let mut doc = TokenCacheDocument::parse(foreign).expect("valid");
    doc.upsert_access_token(&app_token(&["https://vault.azure.net/.default"], 3600));
    doc.upsert_app_metadata(&metadata());
    assert_cache_snapshot!(
        "cache_shared_with_another_sdk_after_our_write",
        doc.to_bytes()
    );
}

#[test]
fn lock_file_content() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("msal.cache.lockfile");
    let guard = FileLock::new(&path)
        .acquire(Duration::from_secs(5))
        .expect("lock");
    let content = fs::read_to_string(&path).expect("read lock file");
    drop(guard);
    let (pid, exe) = content.split_once(' ').expect("\"<pid> <exe>\"");
    assert_eq!(pid, std::process::id().to_string());
    let me = std::env::current_exe().expect("current exe");
    assert_eq!(Path::new(exe), me);
    assert!(!content.ends_with('\n'));
    assert_snapshot!(
        "lock_file_content",
        content.replace(pid, "[pid]").replace(exe, "[exe]")
    );
}

/// `name mode` lines for the entries of `dir`, sorted; paths of volatile names (with a
/// timestamp) are checked and then normalised.
fn listing(dir: &Path) -> String {
    let mut lines: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let entry = entry.expect("entry");
            let mode = entry.metadata().expect("stat").permissions().mode();
            let kind = if entry.file_type().expect("type").is_dir() {
                "dir "
            } else {
                "file"
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            let name = match name.split_once(".corrupt-") {
                Some((base, stamp)) => {
                    assert!(is_recent_epoch_seconds(stamp), "{name}: not a timestamp");
                    format!("{base}.corrupt-[epoch seconds]")
                }
                // The lock's stock, `.lockfile.<pid>-<random>.tmp`: this process's.
                None if name.starts_with(".lockfile.") && name.ends_with(".tmp") => {
                    let pid = std::process::id().to_string();
                    assert!(name.starts_with(&format!(".lockfile.{pid}-")), "{name}");
                    ".lockfile.[pid]-[random].tmp".to_owned()
                }
                None => name,
            };
            format!("{kind} {:o} {name}", mode & 0o7777)
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

#[test]
fn files_and_modes_of_the_file_plugin_and_corrupt_recovery() {
    // SAFETY: umask only sets the process's file creation mask; 022 is the common default,
    // so modes below are what users see, whatever the test runner's mask.
    unsafe { libc::umask(0o022) };
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join(".IdentityService");
    let cache = dir.join("msal.cache");
    let persistence = FilePersistence::new(&cache).expect("file persistence");
    persistence.save(b"{\"AccessToken\": trunc").expect("save");
    let guard = persistence.lock(Duration::from_secs(5)).expect("lock");
    let held = listing(&dir);
    let stored = persistence.load().expect("load");
    let decoded = decode_or_recover(stored.as_deref(), &Quarantine::beside(&cache));
    assert!(decoded.corrupt.is_some() && decoded.writable);
    persistence
        .save(&decoded.document.to_bytes())
        .expect("save");
    drop(guard);
    let mut root_listing = listing(root.path());
    root_listing.push_str("\n--- while locked\n");
    root_listing.push_str(&held);
    root_listing.push_str("\n--- after recovery, unlocked\n");
    root_listing.push_str(&listing(&dir));
    assert_snapshot!("files_and_modes", root_listing);
}

#[test]
fn secret_service_attributes_and_labels_of_each_profile() {
    // What each profile writes to the keyring, for the default cache name and the CAE
    // variant the SDKs use: attribute sets and labels are how other SDKs find the item.
    let mut out = String::new();
    for profile in identity_cache_persistence::KeyringProfile::ALL {
        for name in ["msal.cache", "msal.cache.cae"] {
            out.push_str(&format!(
                "[{} / {name}]\nlabel = {:?}\n",
                profile.as_str(),
                profile.label(name)
            ));
            for (key, value) in profile.attributes(name) {
                out.push_str(&format!("{key} = {value:?}\n"));
            }
            out.push('\n');
        }
    }
    assert_snapshot!("secret_service_profiles", out);
}
