//! [`DeviceCodeError`]: why a device-code sign-in or a silent token request failed.

/// The typed cause of a [`DeviceCodeCredential`](super::DeviceCodeCredential) failure.
///
/// `get_token` and `authenticate` return an `azure_core::Error` of kind `Credential` whose
/// source is this error: `error.downcast_ref::<DeviceCodeError>()` tells the cases apart.
/// No variant carries a token, a refresh token or a device code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceCodeError {
    /// The authority host is not `https://` and not a loopback host.
    #[error(
        "authority host {host:?} does not use https; only loopback hosts (127.0.0.1, ::1, \
         localhost) may use http"
    )]
    InsecureAuthority {
        /// The host as given.
        host: String,
    },
    /// The authority host is not an absolute URL with a host, or the tenant is not a
    /// single path segment.
    #[error("invalid authority {authority:?}: {reason}")]
    InvalidAuthority {
        /// The authority host or tenant as given.
        authority: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `get_token` or `authenticate` was called without scopes.
    #[error("no scopes requested")]
    NoScopes,
    /// The user declined the sign-in (`access_denied`).
    #[error("the sign-in was declined (access_denied): {description}")]
    AccessDenied {
        /// The authority's `error_description`.
        description: String,
    },
    /// The device code expired before the user completed the sign-in (`expired_token`, or
    /// its `expires_in` passed while polling).
    #[error("the device code expired before the sign-in completed (expired_token)")]
    CodeExpired,
    /// Any other OAuth error answer (`invalid_client`, `invalid_scope`, ...).
    #[error("the authority answered {status} {error}: {description}")]
    Authority {
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code.
        error: String,
        /// The authority's `error_description`.
        description: String,
    },
    /// The authority answered something that is not the JSON the protocol defines.
    #[error("the authority's {endpoint} answer (HTTP {status}) is not valid: {reason}")]
    InvalidResponse {
        /// `devicecode` or `token`.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
        /// What is wrong with it (never the body: it may hold tokens).
        reason: String,
    },
    /// The HTTP transport failed (connection refused, TLS, timeout).
    #[error("request to the authority's {endpoint} endpoint failed")]
    Transport {
        /// `devicecode` or `token`.
        endpoint: &'static str,
        /// The transport's error.
        #[source]
        source: azure_core::Error,
    },
    /// An authentication record could not be read.
    #[error("invalid authentication record: {0}")]
    InvalidRecord(String),
    /// The authentication record names another client or authority than the credential.
    #[error(
        "the authentication record is for {what} {record:?}, the credential for {credential:?}"
    )]
    RecordMismatch {
        /// `client id` or `authority`.
        what: &'static str,
        /// The record's value.
        record: String,
        /// The credential's value.
        credential: String,
    },
}

impl DeviceCodeError {
    pub(super) fn into_azure(self) -> azure_core::Error {
        azure_core::Error::new(azure_core::error::ErrorKind::Credential, self)
    }
}
