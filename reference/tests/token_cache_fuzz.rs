//! A bounded, proptest-driven fuzz of the cache parser, the stable-toolchain stand-in for
//! the libFuzzer target in `fuzz/` (same properties). Cases: `PROPTEST_CASES`, default
//! 256 per property; `ci/fuzz.sh` runs more.
//!
//! Inputs are raw bytes, JSON-shaped text, and valid MSAL documents with one mutation
//! (truncated, a byte flipped, a section or field of the wrong type), which reach deeper
//! than random bytes would. The token response parsers (`client_info`, ID token claims)
//! get arbitrary strings and base64url of arbitrary JSON: a typed error or a value, never
//! a panic.
#![cfg(feature = "token-cache")]

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use identity_cache_persistence::token_cache::{
    AccessTokenEntry, AccessTokenQuery, ClientInfo, IdTokenClaims, Quarantine, Secret,
    TokenCacheDocument, decode_or_recover,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn entry() -> AccessTokenEntry {
    AccessTokenEntry {
        home_account_id: String::new(),
        environment: "login.microsoftonline.com".into(),
        client_id: "fuzz".into(),
        realm: "t".into(),
        target: "s".into(),
        secret: Secret::new("x"),
        cached_at: 1,
        expires_on: 2,
        extended_expires_on: None,
        refresh_on: None,
        token_type: "Bearer".into(),
    }
}

/// The properties, for any input: no panic; corrupt input is reported; a parsed document
/// survives serialize/parse and an upsert leaves other sections equal.
fn check(data: &[u8]) {
    let decoded = decode_or_recover(Some(data), &Quarantine::nowhere());
    let Ok(mut doc) = TokenCacheDocument::parse(data) else {
        assert!(decoded.corrupt.is_some());
        return;
    };
    let again = TokenCacheDocument::parse(&doc.to_bytes()).expect("our output parses");
    assert!(again == doc, "serialize/parse changed the document");
    let scopes = ["s"];
    let _ = doc.find_access_token(
        &AccessTokenQuery::app_only("login.microsoftonline.com", "fuzz", "t", &scopes),
        0,
    );
    let _ = doc.find_access_token(
        &AccessTokenQuery::for_account("u.t", "env", "fuzz", "t", &scopes),
        0,
    );
    let _ = doc.accounts().count();
    let _ = doc.find_account("u.t", "env");
    let _ = doc.find_id_token("u.t", "env", "fuzz", "t");
    if let Some(rt) = doc.find_refresh_token("u.t", "env", "fuzz") {
        assert!(
            doc.clone().remove_refresh_token(&rt) >= 1,
            "a found token can be removed"
        );
    }
    doc.upsert_access_token(&entry());
    let after = TokenCacheDocument::parse(&doc.to_bytes()).expect("our output parses");
    for name in again.section_names() {
        if name != "AccessToken" && name != "RefreshToken" {
            assert_eq!(after.as_json().get(name), again.as_json().get(name));
        }
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z0-9 ._-]{0,12}".prop_map(Value::String),
        Just(json!("AccessToken")),
        Just(json!("1700000000")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("AccessToken".to_owned()),
                    Just("Account".to_owned()),
                    Just("secret".to_owned()),
                    Just("expires_on".to_owned()),
                    Just("credential_type".to_owned()),
                    Just("client_id".to_owned()),
                    Just("environment".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn valid_document() -> Vec<u8> {
    let mut doc = TokenCacheDocument::new();
    doc.upsert_access_token(&entry());
    let mut value: Value = serde_json::from_slice(&doc.to_bytes()).expect("json");
    value["Unrecognized_Entity"] = json!({"k": {"f": [1, "two", null]}});
    value["Account"] = json!({"u.t-env-t": {"home_account_id": "u.t", "environment": "env"}});
    value["RefreshToken"] = json!({"u.t-env-refreshtoken-fuzz--": {
        "credential_type": "RefreshToken", "home_account_id": "u.t", "environment": "env",
        "client_id": "fuzz", "secret": "rt", "family_id": "1", "last_modification_time": "5"}});
    value["IdToken"] = json!({"u.t-env-idtoken-fuzz-t-": {"credential_type": "IdToken",
        "home_account_id": "u.t", "environment": "env", "realm": "t", "client_id": "fuzz",
        "secret": "e30.e30.c2ln"}});
    value["AppMetadata"] = json!({"appmetadata-env-fuzz": {"client_id": "fuzz",
        "environment": "env", "family_id": "1"}});
    serde_json::to_vec_pretty(&value).expect("json")
}

proptest! {
    #[test]
    fn any_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&data);
    }

    #[test]
    fn any_json_value(value in json_value()) {
        check(&serde_json::to_vec(&value).expect("json"));
    }

    #[test]
    fn msal_documents_with_one_mutation(cut in any::<prop::sample::Index>(), flip in any::<u8>(), how in 0..3u8) {
        let mut data = valid_document();
        let at = cut.index(data.len());
        match how {
            0 => data.truncate(at),
            1 => data[at] ^= flip,
            _ => data.insert(at, flip),
        }
        check(&data);
    }

    #[test]
    fn token_response_parsers_never_panic(text in ".{0,64}", value in json_value()) {
        let _ = ClientInfo::parse(&text);
        let _ = IdTokenClaims::parse(&text);
        let encoded = URL_SAFE_NO_PAD.encode(value.to_string());
        let _ = ClientInfo::parse(&encoded);
        let _ = IdTokenClaims::parse(&format!("e30.{encoded}.c2ln"));
    }

    #[test]
    fn msal_documents_with_wrong_types(value in json_value(), place in 0..8u8) {
        let mut doc: Value = serde_json::from_slice(&valid_document()).expect("json");
        let key = doc["AccessToken"].as_object().and_then(|m| m.keys().next().cloned()).expect("entry");
        let rt = "u.t-env-refreshtoken-fuzz--";
        match place {
            0 => doc["AccessToken"] = value,
            1 => doc["AccessToken"][&key] = value,
            2 => doc["AccessToken"][&key]["expires_on"] = value,
            3 => doc["AccessToken"][&key]["secret"] = value,
            4 => doc["RefreshToken"][rt]["secret"] = value,
            5 => doc["RefreshToken"][rt]["last_modification_time"] = value,
            6 => doc["AppMetadata"]["appmetadata-env-fuzz"]["family_id"] = value,
            _ => doc["Account"]["u.t-env-t"]["home_account_id"] = value,
        }
        check(&serde_json::to_vec(&doc).expect("json"));
    }
}
