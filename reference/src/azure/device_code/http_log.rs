//! What `AZURE_LOG_LEVEL=info` shows of the authority's requests and answers: everything
//! but the secrets.
//!
//! Written here rather than taken from azure_core's logging policy: that policy logs no
//! bodies at all, and the bodies (the OAuth error codes, the `expires_in`, the scopes
//! granted) are what a user needs to see when a sign-in fails.

use serde_json::Value;

/// Form fields and JSON members whose values are secrets, or codes that let someone
/// finish a sign-in: their values are replaced by `<redacted>`.
const SECRET_NAMES: [&str; 10] = [
    "access_token",
    "refresh_token",
    "id_token",
    "device_code",
    "user_code",
    "code",
    "client_secret",
    "client_assertion",
    "assertion",
    "password",
];

const REDACTED: &str = "<redacted>";

fn is_secret(name: &str) -> bool {
    SECRET_NAMES.iter().any(|s| name.eq_ignore_ascii_case(s))
}

/// A form-encoded request body with secret values redacted, decoded for reading.
pub(super) fn redact_form(body: &[u8]) -> String {
    form_urlencoded::parse(body)
        .map(|(name, value)| {
            let value = if is_secret(&name) {
                REDACTED.into()
            } else {
                value
            };
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A JSON response body with secret members redacted, and every secret value also
/// removed from the other strings (the device-code `message` repeats the `user_code`).
/// A body that is not JSON is shown by its length only: it could be anything.
pub(super) fn redact_json(body: &[u8]) -> String {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return format!("<{} bytes, not JSON>", body.len());
    };
    let mut secrets = Vec::new();
    collect_secrets(&mut value, &mut secrets);
    // Short values would scrub unrelated text; real codes and tokens are longer.
    secrets.retain(|s| s.len() >= 4);
    scrub(&mut value, &secrets);
    value.to_string()
}

fn collect_secrets(value: &mut Value, secrets: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            for (name, member) in members.iter_mut() {
                if is_secret(name) {
                    if let Value::String(s) = member {
                        secrets.push(std::mem::take(s));
                    }
                    *member = Value::String(REDACTED.into());
                } else {
                    collect_secrets(member, secrets);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| collect_secrets(v, secrets)),
        _ => {}
    }
}

fn scrub(value: &mut Value, secrets: &[String]) {
    match value {
        Value::String(s) => {
            for secret in secrets {
                if s.contains(secret.as_str()) {
                    *s = s.replace(secret.as_str(), REDACTED);
                }
            }
        }
        Value::Object(members) => members.values_mut().for_each(|v| scrub(v, secrets)),
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, secrets)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_secrets_are_redacted() {
        let shown = redact_form(
            b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code\
              &client_id=c&device_code=DC-secret-123&refresh_token=RT.secret",
        );
        assert_eq!(
            shown,
            "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=c\
             &device_code=<redacted>&refresh_token=<redacted>"
        );
    }

    #[test]
    fn json_secrets_are_redacted_everywhere() {
        let shown = redact_json(
            br#"{"user_code":"ABCD-1234","device_code":"dc-very-secret","expires_in":900,
                "message":"Open https://x/devicelogin and enter the code ABCD-1234 to sign in.",
                "nested":[{"id_token":"eyJ.id.tok"}],"access_token":"eyJ.at"}"#,
        );
        for secret in ["ABCD-1234", "dc-very-secret", "eyJ.id.tok", "eyJ.at"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("\"expires_in\":900"), "{shown}");
        assert!(
            shown.contains("enter the code <redacted> to sign in"),
            "{shown}"
        );
        assert_eq!(redact_json(b"<html>token</html>"), "<18 bytes, not JSON>");
    }
}
