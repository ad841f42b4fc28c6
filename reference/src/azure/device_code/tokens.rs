//! The credential's reads and writes of the MSAL unified cache: which account, its access
//! and refresh tokens, and the entities a token answer becomes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azure_core::{credentials::AccessToken, time::OffsetDateTime};

use super::{AuthenticationRecord, DeviceCodeError, authority::Authority, grant::TokenResponse};
use crate::token_cache::{
    AccessTokenEntry, AccessTokenQuery, AccountEntry, AppMetadataEntry, ClientInfo, IdTokenClaims,
    IdTokenEntry, MalformedTokenData, RefreshTokenEntry, TokenCacheDocument,
};

/// The grant type MSAL records as the `account_source` of a device-code sign-in.
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Finds the credential's entries: its authority host, tenant (the entries' `realm`, as
/// MSAL Python writes it: the configured tenant, `organizations` included) and client.
pub(super) struct Lookup<'a> {
    pub authority: &'a Authority,
    pub client_id: &'a str,
}

impl Lookup<'_> {
    /// The account to use without a record: the only one (by `home_account_id`) at this
    /// authority host holding a refresh token this client can redeem. `None` when there
    /// are none or several: which one the user wants is theirs to say, with a sign-in.
    pub(super) fn the_only_account(
        &self,
        document: &TokenCacheDocument,
    ) -> Option<AuthenticationRecord> {
        let environment = self.authority.environment();
        let mut candidates: Vec<String> = document
            .accounts()
            .filter(|a| a.environment.eq_ignore_ascii_case(environment))
            .map(|a| a.home_account_id)
            .filter(|id| {
                document
                    .find_refresh_token(id, environment, self.client_id)
                    .is_some()
            })
            .collect();
        candidates.sort();
        candidates.dedup();
        let [home_account_id] = candidates.as_slice() else {
            tracing::debug!(
                accounts = candidates.len(),
                "no single cached account for this client; a sign-in is needed"
            );
            return None;
        };
        let account = document.find_account(home_account_id, environment)?;
        Some(AuthenticationRecord {
            authority: account.environment,
            home_account_id: account.home_account_id,
            client_id: self.client_id.to_owned(),
            tenant_id: account.realm,
            username: account.username,
        })
    }

    /// A cached access token of `account` for `scopes`, valid for at least `margin` and
    /// not past its `refresh_on`.
    pub(super) fn access_token(
        &self,
        document: &TokenCacheDocument,
        account: &AuthenticationRecord,
        scopes: &[&str],
        margin: Duration,
    ) -> Option<AccessToken> {
        let now = unix_now();
        let query = AccessTokenQuery::for_account(
            &account.home_account_id,
            self.authority.environment(),
            self.client_id,
            self.authority.tenant(),
            scopes,
        );
        let entry = document
            .find_access_token(&query, now.saturating_add(margin.as_secs()))
            .filter(|entry| entry.refresh_on.is_none_or(|at| at > now))?;
        let expires_on = OffsetDateTime::from_unix_timestamp(entry.expires_on as i64).ok()?;
        Some(AccessToken::new(
            entry.secret.expose().to_owned(),
            expires_on,
        ))
    }

    /// The refresh token to redeem for `account`.
    pub(super) fn refresh_token(
        &self,
        document: &TokenCacheDocument,
        account: &AuthenticationRecord,
    ) -> Option<RefreshTokenEntry> {
        document.find_refresh_token(
            &account.home_account_id,
            self.authority.environment(),
            self.client_id,
        )
    }
}

/// Writes a token answer into the cache.
pub(super) struct Saving<'a> {
    pub authority: &'a Authority,
    pub client_id: &'a str,
    /// The scopes asked for.
    pub scopes: &'a [&'a str],
    /// The account whose refresh token was redeemed; `None` for a sign-in, whose answer
    /// must then name the account (`client_info` and an ID token).
    pub account: Option<&'a AuthenticationRecord>,
}

impl Saving<'_> {
    /// Upserts the account, ID token, access token, refresh token and app metadata of
    /// `response`; returns the account's record and the access token.
    pub(super) fn save(
        &self,
        document: &mut TokenCacheDocument,
        response: &TokenResponse,
    ) -> Result<(AuthenticationRecord, AccessToken), DeviceCodeError> {
        let now = unix_now();
        let environment = self.authority.environment();
        let realm = self.authority.tenant();
        let record = match (&response.client_info, &response.id_token, self.account) {
            (Some(client_info), Some(id_token), account) => {
                let client_info = ClientInfo::parse(client_info).map_err(malformed)?;
                let claims = IdTokenClaims::parse(id_token.expose()).map_err(malformed)?;
                let mut entry = AccountEntry::from_sign_in(
                    &client_info,
                    &claims,
                    environment,
                    realm,
                    DEVICE_CODE_GRANT,
                );
                if account.is_some() {
                    // A refresh keeps the source the account was established by.
                    entry.account_source = None;
                }
                document.upsert_account(&entry);
                document.upsert_id_token(&IdTokenEntry {
                    home_account_id: entry.home_account_id.clone(),
                    environment: environment.to_owned(),
                    realm: realm.to_owned(),
                    client_id: self.client_id.to_owned(),
                    secret: id_token.clone(),
                });
                AuthenticationRecord {
                    authority: environment.to_owned(),
                    home_account_id: entry.home_account_id,
                    client_id: self.client_id.to_owned(),
                    tenant_id: claims.tid.clone().unwrap_or_else(|| realm.to_owned()),
                    username: entry.username,
                }
            }
            (_, _, Some(account)) => account.clone(),
            (None, _, None) => return Err(missing("client_info")),
            (_, None, None) => return Err(missing("id_token")),
        };
        let expires_on = now.saturating_add(response.expires_in);
        let secret = response.access_token.clone();
        document.upsert_access_token(&AccessTokenEntry {
            home_account_id: record.home_account_id.clone(),
            environment: environment.to_owned(),
            client_id: self.client_id.to_owned(),
            realm: realm.to_owned(),
            target: self.target(response),
            secret: secret.clone(),
            cached_at: now,
            expires_on,
            extended_expires_on: response.ext_expires_in.map(|s| now.saturating_add(s)),
            refresh_on: response.refresh_in.map(|s| now.saturating_add(s)),
            token_type: response
                .token_type
                .clone()
                .unwrap_or_else(|| "Bearer".to_owned()),
        });
        if let Some(refresh_token) = &response.refresh_token {
            document.upsert_refresh_token(&RefreshTokenEntry {
                home_account_id: record.home_account_id.clone(),
                environment: environment.to_owned(),
                client_id: self.client_id.to_owned(),
                secret: refresh_token.clone(),
                family_id: response.foci.clone(),
            });
        }
        document.upsert_app_metadata(&AppMetadataEntry {
            client_id: self.client_id.to_owned(),
            environment: environment.to_owned(),
            family_id: response.foci.clone(),
        });
        let expires_on = OffsetDateTime::from_unix_timestamp(expires_on as i64).map_err(|_| {
            DeviceCodeError::InvalidResponse {
                endpoint: "token",
                status: 200,
                reason: "expires_in out of range".into(),
            }
        })?;
        Ok((
            record,
            AccessToken::new(secret.expose().to_owned(), expires_on),
        ))
    }

    /// The access token's `target`: the scopes granted, plus the ones asked for. A
    /// `.default` request is answered with the resource's actual scopes; without the
    /// requested ones in `target`, the same request would never find the token again.
    fn target(&self, response: &TokenResponse) -> String {
        let granted = response.scope.as_deref().unwrap_or("");
        let all: Vec<&str> = granted
            .split_whitespace()
            .chain(self.scopes.iter().copied())
            .filter(|s| !s.eq_ignore_ascii_case("offline_access"))
            .collect();
        AccessTokenEntry::target_of(&all)
    }
}

fn malformed(error: MalformedTokenData) -> DeviceCodeError {
    DeviceCodeError::InvalidResponse {
        endpoint: "token",
        status: 200,
        reason: error.to_string(),
    }
}

fn missing(member: &str) -> DeviceCodeError {
    DeviceCodeError::InvalidResponse {
        endpoint: "token",
        status: 200,
        reason: format!("no {member}: the account of the sign-in is unknown"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
