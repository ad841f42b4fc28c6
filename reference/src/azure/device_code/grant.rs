//! The OAuth 2.0 requests to the authority: the device authorization grant (RFC 8628)
//! and the refresh-token grant, over azure_core's [`HttpClient`].

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use azure_core::http::{HttpClient, Method, Request, Url, headers::HeaderName};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};

use super::{DeviceCodeError, authority::Authority, http_log};
use crate::token_cache::Secret;

/// The scopes every user sign-in asks for besides the caller's: an ID token (`openid`,
/// `profile`) and a refresh token (`offline_access`), as MSAL adds them.
pub(super) const OIDC_SCOPES: [&str; 3] = ["openid", "profile", "offline_access"];

/// RFC 8628 §3.5: on `slow_down` the interval grows by 5 seconds for this and all later
/// requests.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// RFC 8628 §3.2: the interval when the authority gives none.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// What the user is shown to complete a sign-in, given to the prompt callback.
#[derive(Clone)]
pub struct DeviceCodePrompt {
    /// The code to enter at [`verification_uri`](Self::verification_uri).
    pub user_code: String,
    /// Where to enter it, e.g. `https://microsoft.com/devicelogin`.
    pub verification_uri: String,
    /// The authority's instructions for the user, naming both.
    pub message: String,
    /// When the code expires.
    pub expires_on: SystemTime,
}

impl fmt::Debug for DeviceCodePrompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The user code lets whoever enters it first complete this sign-in.
        f.debug_struct("DeviceCodePrompt")
            .field("user_code", &"<redacted>")
            .field("verification_uri", &self.verification_uri)
            .field("expires_on", &self.expires_on)
            .finish_non_exhaustive()
    }
}

/// The device authorization answer (RFC 8628 §3.2).
#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    // Azure AD v1 endpoints and some older authorities spell it `verification_url`.
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(deserialize_with = "seconds")]
    expires_in: u64,
    #[serde(default, deserialize_with = "optional_seconds")]
    interval: Option<u64>,
    #[serde(default)]
    message: Option<String>,
}

/// A successful token answer (RFC 6749 §5.1, with Azure AD's members).
#[derive(Deserialize)]
pub(super) struct TokenResponse {
    #[serde(deserialize_with = "secret")]
    pub access_token: Secret,
    #[serde(default, deserialize_with = "optional_secret")]
    pub refresh_token: Option<Secret>,
    #[serde(default, deserialize_with = "optional_secret")]
    pub id_token: Option<Secret>,
    /// Base64url JSON `{"uid", "utid"}`: the home account, when `client_info=1` was sent.
    #[serde(default)]
    pub client_info: Option<String>,
    #[serde(deserialize_with = "seconds")]
    pub expires_in: u64,
    #[serde(default, deserialize_with = "optional_seconds")]
    pub ext_expires_in: Option<u64>,
    #[serde(default, deserialize_with = "optional_seconds")]
    pub refresh_in: Option<u64>,
    /// The scopes granted, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub token_type: Option<String>,
    /// The family of client ids (FOCI) sharing the refresh token, e.g. `"1"`.
    #[serde(default)]
    pub foci: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("has_id_token", &self.id_token.is_some())
            .finish_non_exhaustive()
    }
}

/// An OAuth error answer (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The answer to a refresh-token request.
#[derive(Debug)]
pub(super) enum Refreshed {
    Tokens(TokenResponse),
    /// `invalid_grant`: the refresh token is expired, revoked, or the user must consent
    /// or sign in again; only a new sign-in helps.
    Rejected {
        description: String,
    },
}

/// The client of one authority: sends the grant requests.
#[derive(Debug, Clone)]
pub(super) struct Grants {
    pub http: Arc<dyn HttpClient>,
    pub authority: Authority,
    pub client_id: String,
}

impl Grants {
    /// The device-code sign-in: asks for a code, shows it with `prompt`, polls the token
    /// endpoint until the user completed (or declined) the sign-in or the code expired.
    pub(super) async fn sign_in(
        &self,
        scopes: &[&str],
        prompt: &(dyn Fn(&DeviceCodePrompt) + Send + Sync),
    ) -> Result<TokenResponse, DeviceCodeError> {
        let endpoint = "devicecode";
        let form = form_body(&[
            ("client_id", &self.client_id),
            ("scope", &with_oidc_scopes(scopes)),
        ]);
        let (status, body) = self
            .post(endpoint, self.authority.device_code_endpoint(), form)
            .await?;
        if status != 200 {
            return Err(error_of(endpoint, status, &body));
        }
        let authorization: DeviceAuthorization = parse(endpoint, status, &body)?;
        let lifetime = Duration::from_secs(authorization.expires_in);
        let deadline = Instant::now() + lifetime;
        let message = authorization.message.clone().unwrap_or_else(|| {
            format!(
                "To sign in, use a web browser to open the page {} and enter the code {} to \
                 authenticate.",
                authorization.verification_uri, authorization.user_code
            )
        });
        prompt(&DeviceCodePrompt {
            user_code: authorization.user_code.clone(),
            verification_uri: authorization.verification_uri.clone(),
            message,
            expires_on: SystemTime::now() + lifetime,
        });
        let mut interval = authorization
            .interval
            .map_or(DEFAULT_INTERVAL, Duration::from_secs);
        let device_code = Secret::new(authorization.device_code);
        loop {
            sleep(interval).await;
            if Instant::now() >= deadline {
                return Err(DeviceCodeError::CodeExpired);
            }
            let endpoint = "token";
            let form = form_body(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", &self.client_id),
                ("device_code", device_code.expose()),
                ("client_info", "1"),
            ]);
            let (status, body) = self
                .post(endpoint, self.authority.token_endpoint(), form)
                .await?;
            if status == 200 {
                return parse(endpoint, status, &body);
            }
            match oauth_error(&body) {
                Some(e) if e.error == "authorization_pending" => {}
                Some(e) if e.error == "slow_down" => interval += SLOW_DOWN_STEP,
                Some(e) if e.error == "expired_token" => return Err(DeviceCodeError::CodeExpired),
                Some(e) if e.error == "access_denied" || e.error == "authorization_declined" => {
                    return Err(DeviceCodeError::AccessDenied {
                        description: e.error_description,
                    });
                }
                _ => return Err(error_of(endpoint, status, &body)),
            }
        }
    }

    /// Redeems `refresh_token` for a token for `scopes`.
    pub(super) async fn refresh(
        &self,
        refresh_token: &Secret,
        scopes: &[&str],
    ) -> Result<Refreshed, DeviceCodeError> {
        let endpoint = "token";
        let form = form_body(&[
            ("grant_type", "refresh_token"),
            ("client_id", &self.client_id),
            ("refresh_token", refresh_token.expose()),
            ("scope", &with_oidc_scopes(scopes)),
            ("client_info", "1"),
        ]);
        let (status, body) = self
            .post(endpoint, self.authority.token_endpoint(), form)
            .await?;
        if status == 200 {
            return parse(endpoint, status, &body).map(Refreshed::Tokens);
        }
        match oauth_error(&body) {
            Some(e) if e.error == "invalid_grant" => Ok(Refreshed::Rejected {
                description: e.error_description,
            }),
            _ => Err(error_of(endpoint, status, &body)),
        }
    }

    /// POSTs a form; logs the request and the answer with their secrets redacted.
    async fn post(
        &self,
        endpoint: &'static str,
        url: Url,
        form: String,
    ) -> Result<(u16, Vec<u8>), DeviceCodeError> {
        tracing::info!(
            method = "POST",
            url = %url,
            body = %http_log::redact_form(form.as_bytes()),
            "HTTP request"
        );
        let started = Instant::now();
        let mut request = Request::new(url.clone(), Method::Post);
        request.insert_header(
            HeaderName::from_static("content-type"),
            "application/x-www-form-urlencoded",
        );
        request.insert_header(HeaderName::from_static("accept"), "application/json");
        request.set_body(form.into_bytes());
        let transport = |source| DeviceCodeError::Transport { endpoint, source };
        let response = self
            .http
            .execute_request(&request)
            .await
            .map_err(transport)?
            .try_into_raw_response()
            .await
            .map_err(transport)?;
        let status = u16::from(response.status());
        let body = response.into_body().to_vec();
        tracing::info!(
            status,
            url = %url,
            elapsed_ms = started.elapsed().as_millis() as u64,
            body = %http_log::redact_json(&body),
            "HTTP response"
        );
        Ok((status, body))
    }
}

/// The scopes asked for: the caller's and the OpenID Connect ones, without duplicates.
fn with_oidc_scopes(scopes: &[&str]) -> String {
    let mut all: Vec<&str> = Vec::new();
    for scope in scopes.iter().chain(OIDC_SCOPES.iter()) {
        if !scope.is_empty() && !all.contains(scope) {
            all.push(scope);
        }
    }
    all.join(" ")
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn parse<T: DeserializeOwned>(
    endpoint: &'static str,
    status: u16,
    body: &[u8],
) -> Result<T, DeviceCodeError> {
    serde_json::from_slice(body).map_err(|e| DeviceCodeError::InvalidResponse {
        endpoint,
        status,
        reason: json_reason(&e),
    })
}

/// What is wrong with an answer, without its content: serde_json's messages about a
/// value of the wrong type quote the value, which could be (part of) a token, so only
/// the messages naming a member are kept whole.
fn json_reason(error: &serde_json::Error) -> String {
    let message = error.to_string();
    if ["missing field", "duplicate field"]
        .iter()
        .any(|safe| message.starts_with(safe))
    {
        return message;
    }
    format!(
        "{:?} error at line {} column {}",
        error.classify(),
        error.line(),
        error.column()
    )
}

fn oauth_error(body: &[u8]) -> Option<ErrorResponse> {
    serde_json::from_slice(body).ok()
}

/// The typed error of an answer that is not a success.
fn error_of(endpoint: &'static str, status: u16, body: &[u8]) -> DeviceCodeError {
    match oauth_error(body) {
        Some(e) => DeviceCodeError::Authority {
            status,
            error: e.error,
            description: e.error_description,
        },
        None => DeviceCodeError::InvalidResponse {
            endpoint,
            status,
            reason: "no OAuth error in the answer".into(),
        },
    }
}

async fn sleep(duration: Duration) {
    if duration.is_zero() {
        return;
    }
    // azure_core's sleep uses the runtime azure_core is configured with (a timer thread
    // without its `tokio` feature), so polling works on any executor.
    let duration =
        azure_core::time::Duration::try_from(duration).unwrap_or(azure_core::time::Duration::MAX);
    azure_core::sleep(duration).await;
}

/// Seconds as a JSON number or, as Azure AD v1 and ADFS send them, a decimal string.
fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(u64),
        Text(String),
    }
    match Seconds::deserialize(d)? {
        Seconds::Number(n) => Ok(n),
        Seconds::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom("seconds are not a number")),
    }
}

fn optional_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    seconds(d).map(Some)
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

fn optional_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Option::<String>::deserialize(d).map(|s| s.map(Secret::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing_error() -> serde_json::Error {
        serde_json::from_slice::<TokenResponse>(br#"{"access_token":"at-secret"}"#)
            .expect_err("no expires_in")
    }

    #[test]
    fn oidc_scopes_are_added_once() {
        assert_eq!(
            with_oidc_scopes(&["https://vault.azure.net/.default", "openid"]),
            "https://vault.azure.net/.default openid profile offline_access"
        );
    }

    #[test]
    fn token_answers_accept_string_seconds_and_hide_tokens() {
        let r: TokenResponse = serde_json::from_slice(
            br#"{"access_token":"at-secret","expires_in":"3599","token_type":"Bearer",
                "refresh_token":"rt-secret","ext_expires_in":7200}"#,
        )
        .expect("valid");
        assert_eq!((r.expires_in, r.ext_expires_in), (3599, Some(7200)));
        assert!(!format!("{r:?}").contains("secret"));
        let missing = serde_json::from_slice::<TokenResponse>(br#"{"access_token":"at-secret"}"#)
            .expect_err("no expires_in")
            .to_string();
        assert!(!missing.contains("at-secret"), "{missing}");
        assert_eq!(
            json_reason(&missing_error()),
            "missing field `expires_in` at line 1 column 28"
        );
        let wrong_type = serde_json::from_slice::<TokenResponse>(
            br#"{"access_token":"at","expires_in":1,"client_info":["secret-part"]}"#,
        )
        .expect_err("client_info is not a string");
        let reason = json_reason(&wrong_type);
        assert!(!reason.contains("secret-part"), "{reason}");
        assert!(reason.starts_with("Data error at line 1"), "{reason}");
    }
}
