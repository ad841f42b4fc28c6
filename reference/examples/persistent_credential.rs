//! A token credential whose tokens survive the process: run it twice, and the second run
//! is served from the persistent cache without asking the inner credential.
//!
//! ```sh
//! AZURE_LOG_LEVEL=verbose cargo run -p identity-cache-persistence --features azure \
//!     --example persistent_credential
//! ```
//!
//! The inner credential here is a stand-in that mints a fake token and says when it is
//! called; in a program it is any azure_identity credential, e.g.
//! `ClientSecretCredential::new(tenant, client_id, secret, None)?`.
//!
//! The cache is `~/.IdentityService/persistent-credential-example` in the Secret Service
//! (or, with `--unsafe-file` when there is none, a plaintext 0600 file there). Set
//! `EXAMPLE_CACHE_DIR` to use another directory.

use std::sync::Arc;

use azure_core::{
    credentials::{AccessToken, TokenCredential, TokenRequestOptions},
    time::{Duration, OffsetDateTime},
};
use identity_cache_persistence::{
    TokenCachePersistenceOptions,
    azure::{CacheIdentity, PersistentTokenCredential, init_logging_from_env},
};

/// Stands in for a real credential: mints a token valid for an hour.
#[derive(Debug)]
struct PretendCredential;

#[async_trait::async_trait]
impl TokenCredential for PretendCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        println!("inner credential called for {scopes:?}");
        Ok(AccessToken::new(
            format!("pretend-token-{}", fastrand::u64(..)),
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging_from_env();
    // The Rust counterpart of the JS
    //   useIdentityPlugin(cachePersistencePlugin);
    //   new ClientSecretCredential(tenant, client, secret,
    //       { tokenCachePersistenceOptions: { enabled: true, name, unsafeAllowUnencryptedStorage } })
    let options = TokenCachePersistenceOptions {
        enabled: true,
        name: "persistent-credential-example".into(),
        unsafe_allow_unencrypted_storage: std::env::args().any(|a| a == "--unsafe-file"),
        directory: std::env::var_os("EXAMPLE_CACHE_DIR").map(Into::into),
        ..Default::default()
    };
    let identity = CacheIdentity::new(
        "00000000-0000-0000-0000-000000000001",
        "00000000-0000-0000-0000-0000000000aa",
    );
    let credential =
        PersistentTokenCredential::new(Arc::new(PretendCredential), identity, &options)?;
    let scopes = ["https://vault.azure.net/.default"];
    let token = credential.get_token(&scopes, None).await?;
    println!(
        "token for {scopes:?}, {} characters, expires {}",
        token.token.secret().len(),
        token.expires_on
    );
    Ok(())
}
