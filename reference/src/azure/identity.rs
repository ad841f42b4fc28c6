//! [`CacheIdentity`]: whose tokens an entry holds.

/// The application and tenant the inner credential authenticates as, which every cache
/// entry names (`client_id`, `realm`, `environment`).
///
/// A `TokenCredential` does not tell who it is, and MSAL libraries sharing the cache find
/// tokens by these fields, so the wrapper is told. Two wrappers with the same identity and
/// cache share tokens, in one process or many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheIdentity {
    /// The application (client) id, e.g. of a service principal.
    pub client_id: String,
    /// The tenant (directory) id: the entries' `realm`.
    pub tenant_id: String,
    /// The authority host, e.g. `https://login.microsoftonline.com` (the default); its
    /// host name, lower-cased, is the entries' `environment`, as MSAL writes it.
    pub authority_host: String,
}

impl CacheIdentity {
    /// The Azure public cloud authority host.
    pub const PUBLIC_CLOUD: &'static str = "https://login.microsoftonline.com";

    /// An identity in the public cloud.
    pub fn new(client_id: impl Into<String>, tenant_id: impl Into<String>) -> Self {
        CacheIdentity {
            client_id: client_id.into(),
            tenant_id: tenant_id.into(),
            authority_host: Self::PUBLIC_CLOUD.to_owned(),
        }
    }

    /// Sets the authority host (sovereign clouds, a test server).
    pub fn with_authority_host(mut self, authority_host: impl Into<String>) -> Self {
        self.authority_host = authority_host.into();
        self
    }

    /// The MSAL `environment`: the authority's host name without scheme, port or path,
    /// lower-cased (`https://Login.Microsoftonline.com:443/x` → `login.microsoftonline.com`).
    pub fn environment(&self) -> String {
        let rest = self
            .authority_host
            .split_once("://")
            .map_or(self.authority_host.as_str(), |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.split(':').next().unwrap_or(""),
        };
        host.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_is_the_lower_cased_host() {
        let id = CacheIdentity::new("c", "t");
        assert_eq!(id.environment(), "login.microsoftonline.com");
        for (host, env) in [
            ("https://Login.Chinacloudapi.cn/", "login.chinacloudapi.cn"),
            ("http://127.0.0.1:8080/tenant", "127.0.0.1"),
            ("https://[::1]:443", "::1"),
            ("login.microsoftonline.us", "login.microsoftonline.us"),
        ] {
            assert_eq!(id.clone().with_authority_host(host).environment(), env);
        }
    }
}
