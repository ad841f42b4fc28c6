//! [`Authority`]: the validated authority host and tenant, and the endpoint URLs.

use azure_core::http::Url;

use super::DeviceCodeError;
use crate::azure::CacheIdentity;

/// An authority host that may be used, with the tenant.
///
/// The host must be `https://`: tokens and refresh tokens travel in its answers. Plain
/// `http://` is allowed only for loopback hosts (`127.0.0.1` and the rest of `127/8`,
/// `::1`, `localhost`): test servers and local authorities, where nothing crosses a
/// network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Authority {
    /// The host with a trailing `/`, so joining keeps its path (e.g. a proxy prefix).
    host: Url,
    tenant: String,
    environment: String,
}

impl Authority {
    pub(super) fn new(host: &str, tenant: &str) -> Result<Self, DeviceCodeError> {
        let invalid = |reason| DeviceCodeError::InvalidAuthority {
            authority: host.to_owned(),
            reason,
        };
        let mut url = Url::parse(host).map_err(|_| invalid("not an absolute URL"))?;
        let Some(name) = url.host_str() else {
            return Err(invalid("no host"));
        };
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(name) => {}
            "http" => {
                return Err(DeviceCodeError::InsecureAuthority {
                    host: host.to_owned(),
                });
            }
            _ => return Err(invalid("the scheme is neither https nor http")),
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials in the URL"));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let tenant_ok = !tenant.is_empty()
            && tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            && tenant != "."
            && tenant != "..";
        if !tenant_ok {
            return Err(DeviceCodeError::InvalidAuthority {
                authority: tenant.to_owned(),
                reason: "a tenant is a GUID, a domain name, `organizations`, `common` or \
                         `consumers`",
            });
        }
        let environment = CacheIdentity::new("", "")
            .with_authority_host(host)
            .environment();
        Ok(Authority {
            host: url,
            tenant: tenant.to_owned(),
            environment,
        })
    }

    /// `{host}/{tenant}/oauth2/v2.0/devicecode`
    pub(super) fn device_code_endpoint(&self) -> Url {
        self.endpoint("devicecode")
    }

    /// `{host}/{tenant}/oauth2/v2.0/token`
    pub(super) fn token_endpoint(&self) -> Url {
        self.endpoint("token")
    }

    fn endpoint(&self, name: &str) -> Url {
        let mut url = self.host.clone();
        // The tenant was checked to be one plain segment, so this cannot fail; the host
        // URL has a path (it is not `data:`-like), so `path_segments_mut` is Ok.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend([self.tenant.as_str(), "oauth2", "v2.0", name]);
        }
        url
    }

    /// The MSAL `environment`: the host name, lower-cased.
    pub(super) fn environment(&self) -> &str {
        &self.environment
    }

    /// The tenant as configured (a GUID, a domain, or `organizations`/`common`/`consumers`).
    pub(super) fn tenant(&self) -> &str {
        &self.tenant
    }
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_loopback_http_only() {
        for ok in [
            "https://login.microsoftonline.com",
            "https://login.microsoftonline.com/",
            "http://127.0.0.1:8080",
            "http://127.0.0.2",
            "http://[::1]:9",
            "http://LOCALHOST:1",
        ] {
            Authority::new(ok, "organizations").expect(ok);
        }
        for insecure in [
            "http://login.microsoftonline.com",
            "http://10.0.0.1",
            "http://[::2]",
        ] {
            assert!(
                matches!(
                    Authority::new(insecure, "t"),
                    Err(DeviceCodeError::InsecureAuthority { .. })
                ),
                "{insecure}"
            );
        }
        for invalid in [
            "login.microsoftonline.com",
            "ftp://login.microsoftonline.com",
            "https://user:pw@login.microsoftonline.com",
            "https://login.microsoftonline.com?x=1",
        ] {
            assert!(
                matches!(
                    Authority::new(invalid, "t"),
                    Err(DeviceCodeError::InvalidAuthority { .. })
                ),
                "{invalid}"
            );
        }
        for tenant in ["", "a/b", "..", "a?b", "t%2F"] {
            assert!(Authority::new("https://h", tenant).is_err(), "{tenant}");
        }
    }

    #[test]
    fn endpoints_keep_the_host_path() {
        let a = Authority::new("https://Login.Example.com", "contoso.com").expect("valid");
        assert_eq!(
            a.token_endpoint().as_str(),
            "https://login.example.com/contoso.com/oauth2/v2.0/token"
        );
        assert_eq!(a.environment(), "login.example.com");
        let a = Authority::new("http://127.0.0.1:9/prefix", "organizations").expect("valid");
        assert_eq!(
            a.device_code_endpoint().as_str(),
            "http://127.0.0.1:9/prefix/organizations/oauth2/v2.0/devicecode"
        );
    }
}
