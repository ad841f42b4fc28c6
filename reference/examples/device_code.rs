//! The JS getting-started in Rust: sign in with a device code once; later runs get their
//! token silently from the persistent cache.
//!
//! ```js
//! const credential = new DeviceCodeCredential({ tokenCachePersistenceOptions: { enabled: true } });
//! const token = await credential.getToken("https://graph.microsoft.com/.default");
//! ```
//!
//! ```sh
//! AZURE_LOG_LEVEL=info cargo run -p identity-cache-persistence --features device-code \
//!     --example device_code [-- --unsafe-file] [SCOPE]
//! ```
//!
//! The first run prints where to sign in and the code to enter; it keeps the account's
//! authentication record (no secret: which account signed in) in
//! `device-code-example.record.json` next to the cache, so the next run finds the
//! account's tokens without asking. The cache is the Azure SDKs' default,
//! `~/.IdentityService/msal.cache`, in the Secret Service on Linux (with `--unsafe-file`
//! when there is none, a plaintext 0600 file). `EXAMPLE_CACHE_DIR` sets another directory;
//! `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_AUTHORITY_HOST` another tenant
//! (default `organizations`), application and authority.

use std::path::PathBuf;

use azure_core::credentials::TokenCredential;
use identity_cache_persistence::{
    TokenCachePersistenceOptions,
    azure::{
        device_code::{AuthenticationRecord, DeviceCodeCredential, DeviceCodeCredentialOptions},
        init_logging_from_env,
    },
    default_directory,
};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_logging_from_env();
    let scope = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "https://graph.microsoft.com/.default".to_owned());
    let persistence = TokenCachePersistenceOptions {
        enabled: true,
        unsafe_allow_unencrypted_storage: std::env::args().any(|a| a == "--unsafe-file"),
        directory: std::env::var_os("EXAMPLE_CACHE_DIR").map(PathBuf::from),
        ..Default::default()
    };
    let directory = match &persistence.directory {
        Some(directory) => directory.clone(),
        None => default_directory()?,
    };
    let record_path = directory.join("device-code-example.record.json");
    let record = match std::fs::read_to_string(&record_path) {
        Ok(json) => Some(AuthenticationRecord::deserialize(&json)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let credential = DeviceCodeCredential::new(DeviceCodeCredentialOptions {
        tenant_id: std::env::var("AZURE_TENANT_ID").ok(),
        client_id: std::env::var("AZURE_CLIENT_ID").ok(),
        authority_host: std::env::var("AZURE_AUTHORITY_HOST").ok(),
        authentication_record: record.clone(),
        token_cache_persistence_options: Some(persistence),
        ..Default::default()
    })?;
    if record.is_none() {
        let record = credential.authenticate(&[&scope]).await?;
        std::fs::create_dir_all(&directory)?;
        std::fs::write(&record_path, record.serialize())?;
        println!(
            "signed in as {}; record kept in {}",
            record.username,
            record_path.display()
        );
    }
    let token = credential.get_token(&[&scope], None).await?;
    let secret = token.token.secret();
    println!(
        "token for {scope}: {}... ({} characters, expires {})",
        secret.get(..10).unwrap_or(""),
        secret.len(),
        token.expires_on
    );
    Ok(())
}
