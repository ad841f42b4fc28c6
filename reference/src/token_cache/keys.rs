//! Cache keys, composed as Python MSAL (`msal/token_cache.py`, `TokenCache.key_makers`)
//! composes them.
//!
//! Keys are not byte-identical across MSAL libraries: MSAL JS appends two more components
//! (requested-claims hash, auth scheme) and keys a FOCI refresh token by family id. Every
//! MSAL library therefore finds entries by their *fields*, not by their key, and so does
//! this crate; a key only decides which entry an upsert replaces. Python's composition is
//! the one written here because Azure CLI and Python `azure-identity` are the most common
//! writers of the shared cache on Linux and macOS, and with the same key an entry of ours
//! and the equivalent entry of Python replace each other instead of piling up.

/// `home-env-AccessToken-client-realm-target`, lower-cased.
///
/// `target` is the space-separated scope list, sorted as Python sorts it.
pub fn access_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    realm: &str,
    target: &str,
) -> String {
    [
        home_account_id,
        environment,
        "AccessToken",
        client_id,
        realm,
        target,
    ]
    .join("-")
    .to_lowercase()
}

/// MSAL JS's key of a bearer access token (msal-node `generateCredentialKey`): Python's
/// key and one more, empty, component (the auth scheme, empty for bearer tokens).
///
/// Written only for app-only tokens, whose account MSAL JS must find spelled `""` and
/// MSAL Python `null`: the two spellings need two entities under two keys (see
/// [`TokenCacheDocument::upsert_access_token`](super::TokenCacheDocument::upsert_access_token)).
/// Older MSAL JS versions put a requested-claims hash before the scheme; they find the
/// entity by its fields all the same.
pub fn msal_js_access_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    realm: &str,
    target: &str,
) -> String {
    access_token_key(home_account_id, environment, client_id, realm, target) + "-"
}

/// `home-env-RefreshToken-client--target`, lower-cased; the realm is always empty
/// because a refresh token is valid across tenants.
pub fn refresh_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    target: &str,
) -> String {
    [
        home_account_id,
        environment,
        "RefreshToken",
        client_id,
        "",
        target,
    ]
    .join("-")
    .to_lowercase()
}

/// `home-env-IdToken-client-realm-`, lower-cased; the schema wants an empty target.
pub fn id_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    realm: &str,
) -> String {
    [
        home_account_id,
        environment,
        "IdToken",
        client_id,
        realm,
        "",
    ]
    .join("-")
    .to_lowercase()
}

/// `home-env-realm`, lower-cased.
pub fn account_key(home_account_id: &str, environment: &str, realm: &str) -> String {
    [home_account_id, environment, realm]
        .join("-")
        .to_lowercase()
}

/// `appmetadata-env-client`, *not* lower-cased (Python does not lower-case it either).
pub fn app_metadata_key(environment: &str, client_id: &str) -> String {
    format!("appmetadata-{environment}-{client_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values are keys Python msal 1.x writes for the same fields.
    #[test]
    fn access_token_key_is_pythons() {
        assert_eq!(
            access_token_key(
                "uid.UTID",
                "login.microsoftonline.com",
                "Client",
                "UTID",
                "s1 s2"
            ),
            "uid.utid-login.microsoftonline.com-accesstoken-client-utid-s1 s2"
        );
        assert_eq!(
            access_token_key("", "login.microsoftonline.com", "c", "t", "s"),
            "-login.microsoftonline.com-accesstoken-c-t-s"
        );
    }

    #[test]
    fn msal_js_key_has_the_empty_scheme() {
        // What msal-node 2.x/3.x writes for a client-credentials token.
        assert_eq!(
            msal_js_access_token_key("", "login.microsoftonline.com", "c", "t", "s"),
            "-login.microsoftonline.com-accesstoken-c-t-s-"
        );
    }

    #[test]
    fn refresh_id_account_and_app_metadata_keys_are_pythons() {
        assert_eq!(
            refresh_token_key("u.t", "env", "c", "s"),
            "u.t-env-refreshtoken-c--s"
        );
        assert_eq!(id_token_key("u.t", "env", "c", "t"), "u.t-env-idtoken-c-t-");
        assert_eq!(account_key("U.T", "Env", "T"), "u.t-env-t");
        assert_eq!(app_metadata_key("Env", "C"), "appmetadata-Env-C");
    }
}
