//! The MSAL unified token cache format, on top of the opaque blob a persistence stores.
//!
//! A [`CachePersistence`](crate::CachePersistence) never parses the blob. This module is
//! what a credential uses on top of it: it reads the JSON document every MSAL library
//! writes (sections `AccessToken`, `RefreshToken`, `IdToken`, `Account`, `AppMetadata`,
//! each mapping a cache key to an entity whose values are all strings, timestamps as
//! epoch-second strings), finds entries by their fields, and adds or updates entries with
//! the key composition of Python MSAL.
//!
//! The document is kept as a `serde_json::Value` tree and edited in place, so everything
//! this module does not know (sections of other SDKs, unknown fields of an entity, entries
//! under keys composed by another MSAL library) is written back as it was read.
//!
//! ```
//! use identity_cache_persistence::token_cache::{AccessTokenEntry, AccessTokenQuery, Secret, TokenCacheDocument};
//!
//! let mut doc = TokenCacheDocument::parse(br#"{"Unknown": {"x": 1}}"#)?;
//! doc.upsert_access_token(&AccessTokenEntry {
//!     home_account_id: String::new(),
//!     environment: "login.microsoftonline.com".into(),
//!     client_id: "my-client".into(),
//!     realm: "my-tenant".into(),
//!     target: "https://vault.azure.net/.default".into(),
//!     secret: Secret::new("token"),
//!     cached_at: 1_700_000_000,
//!     expires_on: 1_700_003_600,
//!     extended_expires_on: None,
//!     refresh_on: None,
//!     token_type: "Bearer".into(),
//! });
//! let query = AccessTokenQuery::app_only("login.microsoftonline.com", "my-client", "my-tenant",
//!     &["https://vault.azure.net/.default"]);
//! assert!(doc.find_access_token(&query, 1_700_000_100).is_some());
//! let bytes = doc.to_bytes();
//! assert!(TokenCacheDocument::parse(&bytes)?.section_names().any(|s| s == "Unknown"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A signed-in user: the token response's `client_info` names the account
//! (`home_account_id`), its ID token the user; account, ID token, refresh token and access
//! tokens are then stored and found by that account, as MSAL Python and MSAL JS do.
//!
//! ```
//! use identity_cache_persistence::token_cache::{
//!     AccessTokenQuery, AccountEntry, ClientInfo, IdTokenClaims, RefreshTokenEntry, Secret,
//!     TokenCacheDocument,
//! };
//!
//! // From a token response (base64url JSON; the ID token's signature is not checked).
//! let client_info = ClientInfo::parse("eyJ1aWQiOiJ1aWQiLCJ1dGlkIjoidXRpZCJ9")?;
//! let claims = IdTokenClaims::parse(
//!     "e30.eyJzdWIiOiJzIiwib2lkIjoidWlkIiwicHJlZmVycmVkX3VzZXJuYW1lIjoidUBleC5jb20ifQ.c2ln")?;
//! let account = AccountEntry::from_sign_in(&client_info, &claims, "login.microsoftonline.com",
//!     "utid", "urn:ietf:params:oauth:grant-type:device_code");
//! assert_eq!((account.home_account_id.as_str(), account.username.as_str()), ("uid.utid", "u@ex.com"));
//!
//! let mut doc = TokenCacheDocument::new();
//! doc.upsert_account(&account);
//! doc.upsert_refresh_token(&RefreshTokenEntry {
//!     home_account_id: account.home_account_id.clone(),
//!     environment: account.environment.clone(),
//!     client_id: "my-client".into(),
//!     secret: Secret::new("refresh-token"),
//!     family_id: None,
//! });
//! let found = doc.find_account("uid.utid", "login.microsoftonline.com").expect("account");
//! let rt = doc.find_refresh_token(&found.home_account_id, &found.environment, "my-client");
//! assert_eq!(rt.map(|rt| rt.secret.expose().to_owned()).as_deref(), Some("refresh-token"));
//! let scopes = ["https://vault.azure.net/.default"];
//! let query = AccessTokenQuery::for_account("uid.utid", "login.microsoftonline.com",
//!     "my-client", "utid", &scopes);
//! assert!(doc.find_access_token(&query, 0).is_none(), "no access token stored yet");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! App-only access tokens are the one place the SDKs disagree on the schema: MSAL Python
//! writes and finds them with `home_account_id: null`, MSAL JS with `""`.
//! [`TokenCacheDocument::upsert_access_token`] writes both, under each SDK's key, so each
//! finds this crate's tokens.

mod account;
mod client_info;
mod corrupt;
mod document;
mod encoded_json;
mod entries;
mod id_token;
mod keys;
mod refresh_token;

pub use account::{AUTHORITY_TYPE_MSSTS, AccountEntry};
pub use client_info::ClientInfo;
pub use corrupt::{Decoded, Quarantine, decode_or_recover};
pub use document::{CorruptCache, TokenCacheDocument};
pub use encoded_json::MalformedTokenData;
pub use entries::{AccessTokenEntry, AccessTokenQuery, AppMetadataEntry, Secret, Section};
pub use id_token::{IdTokenClaims, IdTokenEntry};
pub use keys::{
    access_token_key, account_key, app_metadata_key, id_token_key, msal_js_access_token_key,
    refresh_token_key,
};
pub use refresh_token::RefreshTokenEntry;
