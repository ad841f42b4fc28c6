//! Any bytes as a stored token cache: parsing and recovery never panic, and what parses
//! survives an upsert and a serialize/parse cycle with the same meaning.
#![no_main]

use identity_cache_persistence::token_cache::{
    AccessTokenEntry, Quarantine, Secret, TokenCacheDocument, decode_or_recover,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = decode_or_recover(Some(data), &Quarantine::nowhere());
    let Ok(mut doc) = TokenCacheDocument::parse(data) else {
        assert!(decoded.corrupt.is_some());
        return;
    };
    let again = TokenCacheDocument::parse(&doc.to_bytes()).expect("our output parses");
    assert!(again == doc, "serialize/parse changed the document");
    let _ = doc.access_tokens().count();
    doc.upsert_access_token(&AccessTokenEntry {
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
    });
    let after = TokenCacheDocument::parse(&doc.to_bytes()).expect("our output parses");
    for name in again.section_names() {
        if name != "AccessToken" {
            assert_eq!(after.as_json().get(name), again.as_json().get(name));
        }
    }
});
