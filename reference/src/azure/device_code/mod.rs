//! [`DeviceCodeCredential`] (feature `device-code`): signs a user in with the OAuth 2.0
//! device authorization grant once, keeps the tokens in the MSAL token cache, and serves
//! later requests (in this process or the next) silently from it.
//!
//! ```no_run
//! use azure_core::credentials::TokenCredential;
//! use identity_cache_persistence::{
//!     TokenCachePersistenceOptions,
//!     azure::device_code::{DeviceCodeCredential, DeviceCodeCredentialOptions},
//! };
//!
//! # async fn run() -> azure_core::Result<()> {
//! // new DeviceCodeCredential({ tokenCachePersistenceOptions: { enabled: true } })
//! let credential = DeviceCodeCredential::new(DeviceCodeCredentialOptions {
//!     token_cache_persistence_options: Some(TokenCachePersistenceOptions {
//!         enabled: true,
//!         ..Default::default()
//!     }),
//!     ..Default::default()
//! })?;
//! // The first run prompts on stderr; later runs are silent while the refresh token lives.
//! let token = credential
//!     .get_token(&["https://graph.microsoft.com/.default"], None)
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod authority;
mod error;
mod grant;
mod http_log;
mod record;
mod session;
mod tokens;

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use azure_core::{
    credentials::{AccessToken, TokenCredential, TokenRequestOptions},
    http::HttpClient,
};

pub use error::DeviceCodeError;
pub use grant::DeviceCodePrompt;
pub use record::AuthenticationRecord;

use self::{
    authority::Authority,
    grant::{Grants, Refreshed},
    session::{Session, Store},
};
use crate::{
    CachePersistence, CachePlugin, TokenCachePersistenceOptions, azure::REFRESH_MARGIN,
    persistence_for, token_cache::Quarantine,
};

/// Shows the user where to sign in and the code to enter.
pub type PromptCallback = Arc<dyn Fn(&DeviceCodePrompt) + Send + Sync>;

/// Options of a [`DeviceCodeCredential`], as `DeviceCodeCredentialOptions` of the JS and
/// Python Azure Identity libraries.
#[derive(Clone, Default)]
pub struct DeviceCodeCredentialOptions {
    /// The tenant; default `organizations` (work or school accounts of any tenant), as the
    /// other SDKs.
    pub tenant_id: Option<String>,
    /// The application (client) id; default [`DeviceCodeCredential::DEVELOPER_CLIENT_ID`],
    /// the Azure SDKs' development sign-on client.
    pub client_id: Option<String>,
    /// The authority host; default `https://login.microsoftonline.com`. Must be `https://`
    /// except for loopback hosts (`127.0.0.1`, `::1`, `localhost`).
    pub authority_host: Option<String>,
    /// Called with the user code and verification URI when a sign-in starts; default:
    /// prints the authority's message to stderr.
    pub user_prompt_callback: Option<PromptCallback>,
    /// The account to get tokens for, from an earlier
    /// [`authenticate`](DeviceCodeCredential::authenticate); it must be of the same client
    /// id and authority host.
    pub authentication_record: Option<AuthenticationRecord>,
    /// Where tokens persist across processes; `None` or `enabled: false`: in this
    /// process's memory only.
    pub token_cache_persistence_options: Option<TokenCachePersistenceOptions>,
    /// The HTTP transport; default azure_core's (reqwest, which needs a tokio runtime).
    pub http_client: Option<Arc<dyn HttpClient>>,
}

impl fmt::Debug for DeviceCodeCredentialOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCodeCredentialOptions")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("authority_host", &self.authority_host)
            .field("user_prompt_callback", &self.user_prompt_callback.is_some())
            .field("authentication_record", &self.authentication_record)
            .field(
                "token_cache_persistence_options",
                &self.token_cache_persistence_options,
            )
            .field("http_client", &self.http_client)
            .finish()
    }
}

/// A [`TokenCredential`] signing a user in with a device code (RFC 8628), as
/// `DeviceCodeCredential` of the JS, Python and .NET Azure Identity libraries.
///
/// For each [`get_token`](TokenCredential::get_token):
///
/// 1. Takes the token cache's lock (cross-process when persistent) and finds the account:
///    the [`AuthenticationRecord`] of the options or of this credential's last sign-in;
///    without one, the only account holding a refresh token of this client id at this
///    authority host (a refresh token is good for every tenant). Several such accounts,
///    or none: a sign-in.
/// 2. An access token of that account for the scopes, valid for at least the refresh
///    margin ([`REFRESH_MARGIN`]) and not past its `refresh_on`, is returned: no request.
/// 3. Otherwise its refresh token is redeemed *while the lock is held*; the new tokens are
///    saved, then the lock released. Other processes needing a token meanwhile wait on the
///    lock and then find the new access token: N processes, one refresh request.
/// 4. Only when the authority rejects the refresh token (`invalid_grant`: expired,
///    revoked) is it removed, the lock released, and a device-code sign-in started. The
///    cache lock is not held during the sign-in, which waits for the user for minutes;
///    concurrent requests of the same credential wait for it and then use its tokens
///    (one prompt), other processes needing a sign-in meanwhile prompt on their own.
///
/// A sign-in writes the account, ID token, refresh token, access token and app metadata
/// in the MSAL unified cache schema, so the other Azure SDKs sharing the cache find them.
///
/// The cache never makes a token request fail: when it cannot be locked, read or saved,
/// that is logged at warning level and the request goes on without it (which can mean a
/// sign-in). A corrupt cache is kept aside (see
/// [`decode_or_recover`](crate::token_cache::decode_or_recover)) and replaced.
///
/// `AZURE_LOG_LEVEL=info` (see [`init_logging_from_env`](crate::azure::init_logging_from_env))
/// logs every request to the authority and its answer, with tokens, refresh tokens,
/// device and user codes redacted.
pub struct DeviceCodeCredential {
    grants: Grants,
    store: Arc<Store>,
    prompt: PromptCallback,
    /// The account of the options, then of the last sign-in.
    account: Mutex<Option<AuthenticationRecord>>,
    /// Held while a `get_token` signs in, so that concurrent requests of this credential
    /// wait for that sign-in and use its tokens instead of prompting the user each.
    signing_in: async_lock::Mutex<()>,
}

impl fmt::Debug for DeviceCodeCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCodeCredential")
            .field("authority", &self.grants.authority)
            .field("client_id", &self.grants.client_id)
            .field("account", &self.account())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl DeviceCodeCredential {
    /// The Azure SDKs' development sign-on client (the Azure CLI's), their default.
    pub const DEVELOPER_CLIENT_ID: &'static str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
    /// The default tenant: work and school accounts of any tenant.
    pub const DEFAULT_TENANT: &'static str = "organizations";

    /// A credential with the storage [`persistence_for`] picks for the options'
    /// `token_cache_persistence_options`.
    ///
    /// Fails (azure_core kind `Credential`) on an authority host that is not https and not
    /// loopback, an invalid tenant, an authentication record of another client or
    /// authority ([`DeviceCodeError`] as the source), and when persistence is enabled but
    /// no storage is usable (this crate's [`Error`](crate::Error) as the source).
    pub fn new(options: DeviceCodeCredentialOptions) -> azure_core::Result<Arc<Self>> {
        let store = match &options.token_cache_persistence_options {
            Some(persistence_options) => {
                match persistence_for(persistence_options).map_err(to_azure_error)? {
                    Some(persistence) => Store::Persistent {
                        plugin: CachePlugin::new(persistence),
                        quarantine: Quarantine::beside(
                            persistence_options.cache_path().map_err(to_azure_error)?,
                        ),
                    },
                    None => Store::Memory(Mutex::default()),
                }
            }
            None => Store::Memory(Mutex::default()),
        };
        Self::with_store(options, store)
    }

    /// A credential with an explicit persistence (tests, custom storage); corrupt caches
    /// are kept by `quarantine`. The options' `token_cache_persistence_options` are
    /// ignored.
    pub fn with_persistence(
        options: DeviceCodeCredentialOptions,
        persistence: Box<dyn CachePersistence>,
        quarantine: Quarantine,
    ) -> azure_core::Result<Arc<Self>> {
        let store = Store::Persistent {
            plugin: CachePlugin::new(persistence),
            quarantine,
        };
        Self::with_store(options, store)
    }

    fn with_store(
        options: DeviceCodeCredentialOptions,
        store: Store,
    ) -> azure_core::Result<Arc<Self>> {
        let DeviceCodeCredentialOptions {
            tenant_id,
            client_id,
            authority_host,
            user_prompt_callback,
            authentication_record,
            token_cache_persistence_options: _,
            http_client,
        } = options;
        let authority = Authority::new(
            authority_host
                .as_deref()
                .unwrap_or(crate::azure::CacheIdentity::PUBLIC_CLOUD),
            tenant_id.as_deref().unwrap_or(Self::DEFAULT_TENANT),
        )
        .map_err(DeviceCodeError::into_azure)?;
        let client_id = client_id.unwrap_or_else(|| Self::DEVELOPER_CLIENT_ID.to_owned());
        if let Some(record) = &authentication_record {
            check_record(record, &client_id, &authority).map_err(DeviceCodeError::into_azure)?;
        }
        let http = http_client.unwrap_or_else(|| azure_core::http::new_http_client(None));
        Ok(Arc::new(DeviceCodeCredential {
            grants: Grants {
                http,
                authority,
                client_id,
            },
            store: Arc::new(store),
            prompt: user_prompt_callback.unwrap_or_else(|| {
                Arc::new(|prompt: &DeviceCodePrompt| eprintln!("{}", prompt.message))
            }),
            account: Mutex::new(authentication_record),
            signing_in: async_lock::Mutex::new(()),
        }))
    }

    /// Signs the user in with a device code (always: this is the interactive step), keeps
    /// the tokens in the cache, and returns the account's record, to be saved (it holds no
    /// secret) and given to a later credential so it finds the tokens silently.
    pub async fn authenticate(&self, scopes: &[&str]) -> azure_core::Result<AuthenticationRecord> {
        if scopes.is_empty() {
            return Err(DeviceCodeError::NoScopes.into_azure());
        }
        let _signing_in = self.signing_in.lock().await;
        let (record, _) = self.sign_in(scopes).await?;
        Ok(record)
    }

    /// The account this credential gets tokens for: the record of the options, or of its
    /// last sign-in.
    pub fn authentication_record(&self) -> Option<AuthenticationRecord> {
        self.account()
    }

    fn account(&self) -> Option<AuthenticationRecord> {
        self.account
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The device-code sign-in, then the tokens saved under a new session.
    async fn sign_in(
        &self,
        scopes: &[&str],
    ) -> azure_core::Result<(AuthenticationRecord, AccessToken)> {
        let response = self
            .grants
            .sign_in(scopes, self.prompt.as_ref())
            .await
            .map_err(DeviceCodeError::into_azure)?;
        let signed_in = tokens::Saving {
            authority: &self.grants.authority,
            client_id: &self.grants.client_id,
            scopes,
            account: None,
        };
        let (record, token) = match Session::open(&self.store).await {
            Some(mut session) => {
                let saved = signed_in.save(&mut session.document, &response);
                if saved.is_ok() {
                    session.save().await;
                }
                saved
            }
            None => signed_in.save(&mut Default::default(), &response),
        }
        .map_err(DeviceCodeError::into_azure)?;
        tracing::info!(
            username = %record.username,
            tenant = %record.tenant_id,
            "signed in with a device code"
        );
        *self
            .account
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(record.clone());
        Ok((record, token))
    }

    /// Steps 1 to 3 of the contract: `Ok(Some)` a token without a sign-in, `Ok(None)` a
    /// sign-in is needed.
    async fn silent(&self, scopes: &[&str]) -> azure_core::Result<Option<AccessToken>> {
        let Some(mut session) = Session::open(&self.store).await else {
            return Ok(None);
        };
        let lookup = tokens::Lookup {
            authority: &self.grants.authority,
            client_id: &self.grants.client_id,
        };
        let account = match self.account() {
            Some(record) => record,
            None => match lookup.the_only_account(&session.document) {
                Some(record) => record,
                None => return Ok(None),
            },
        };
        if let Some(token) =
            lookup.access_token(&session.document, &account, scopes, REFRESH_MARGIN)
        {
            tracing::info!(scopes = %scopes.join(" "), "access token from the token cache");
            return Ok(Some(token));
        }
        let Some(refresh_token) = lookup.refresh_token(&session.document, &account) else {
            tracing::debug!("no refresh token for the account; a sign-in is needed");
            return Ok(None);
        };
        tracing::debug!("redeeming the refresh token while holding the cache lock");
        match self
            .grants
            .refresh(&refresh_token.secret, scopes)
            .await
            .map_err(DeviceCodeError::into_azure)?
        {
            Refreshed::Tokens(response) => {
                let saving = tokens::Saving {
                    authority: &self.grants.authority,
                    client_id: &self.grants.client_id,
                    scopes,
                    account: Some(&account),
                };
                let (record, token) = saving
                    .save(&mut session.document, &response)
                    .map_err(DeviceCodeError::into_azure)?;
                session.save().await;
                tracing::info!(scopes = %scopes.join(" "), "access token refreshed");
                *self
                    .account
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(record);
                Ok(Some(token))
            }
            Refreshed::Rejected { description } => {
                tracing::info!(
                    %description,
                    "the refresh token was rejected (invalid_grant); removing it and signing in again"
                );
                session.document.remove_refresh_token(&refresh_token);
                session.save().await;
                Ok(None)
            }
        }
    }
}

#[async_trait::async_trait]
impl TokenCredential for DeviceCodeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if scopes.is_empty() {
            return Err(DeviceCodeError::NoScopes.into_azure());
        }
        if let Some(token) = self.silent(scopes).await? {
            return Ok(token);
        }
        let _signing_in = self.signing_in.lock().await;
        // Another request of this credential may have signed in while this one waited.
        if let Some(token) = self.silent(scopes).await? {
            return Ok(token);
        }
        let (_, token) = self.sign_in(scopes).await?;
        Ok(token)
    }
}

fn check_record(
    record: &AuthenticationRecord,
    client_id: &str,
    authority: &Authority,
) -> Result<(), DeviceCodeError> {
    if record.client_id != client_id {
        return Err(DeviceCodeError::RecordMismatch {
            what: "client id",
            record: record.client_id.clone(),
            credential: client_id.to_owned(),
        });
    }
    if record.environment() != authority.environment() {
        return Err(DeviceCodeError::RecordMismatch {
            what: "authority",
            record: record.authority.clone(),
            credential: authority.environment().to_owned(),
        });
    }
    Ok(())
}

fn to_azure_error(error: crate::Error) -> azure_core::Error {
    azure_core::Error::new(azure_core::error::ErrorKind::Credential, error)
}
