//! Secret Service and D-Bus failures as typed [`Error`]s whose messages tell the causes
//! apart: no bus, no Secret Service on it, a locked collection, refused access, too large.

use secret_service::Error as SsError;
use zbus::DBusError as _;

use crate::error::{Error, ErrorKind};

/// The well-known name of the Secret Service on the session bus.
pub(crate) const SECRETS_NAME: &str = "org.freedesktop.secrets";

/// The bus could not be reached: no session bus, a bad address, a refused handshake.
pub(crate) fn no_bus(address: &str, err: zbus::Error) -> Error {
    Error::with_source(
        ErrorKind::StorageUnavailable,
        format!("no D-Bus session bus: could not connect to {address}: {err}"),
        err,
    )
}

/// No Secret Service on the bus.
pub(crate) fn no_secret_service(detail: &str) -> Error {
    Error::new(
        ErrorKind::StorageUnavailable,
        format!("no Secret Service ({SECRETS_NAME}) on the bus: {detail}"),
    )
}

/// Whether `err` means the connection itself is unusable, so the next operation should
/// connect again instead of reusing it (a restarted daemon, a dropped connection after an
/// oversized message).
pub(crate) fn connection_is_broken(err: &SsError) -> bool {
    match err {
        SsError::Zbus(e) => zbus_connection_is_broken(e),
        SsError::ZbusFdo(e) => {
            matches!(e, zbus::fdo::Error::ZBus(inner) if zbus_connection_is_broken(inner))
                || matches!(remote_name(err).as_deref(), Some(name) if name.ends_with(".Disconnected"))
        }
        SsError::Unavailable | SsError::PromptDisconnected => true,
        _ => matches!(
            remote_name(err).as_deref(),
            // The session or the objects belong to a daemon that has gone.
            Some(
                "org.freedesktop.DBus.Error.ServiceUnknown"
                    | "org.freedesktop.DBus.Error.NameHasNoOwner"
                    | "org.freedesktop.Secret.Error.NoSession"
            )
        ),
    }
}

fn zbus_connection_is_broken(err: &zbus::Error) -> bool {
    matches!(
        err,
        zbus::Error::InputOutput(_) | zbus::Error::Handshake(_) | zbus::Error::Connection(..)
    ) || matches!(
        zbus_remote_name(err).as_deref(),
        Some(
            "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner"
                | "org.freedesktop.DBus.Error.Disconnected"
                | "org.freedesktop.Secret.Error.NoSession"
        )
    )
}

/// Whether `err` says the object asked for does not exist (any more).
pub(crate) fn object_is_gone(err: &SsError) -> bool {
    matches!(
        remote_name(err).as_deref(),
        Some(
            "org.freedesktop.Secret.Error.NoSuchObject"
                | "org.freedesktop.DBus.Error.UnknownObject"
                | "org.freedesktop.DBus.Error.UnknownMethod"
        )
    )
}

/// The D-Bus error name a method call failed with, if it failed remotely.
fn remote_name(err: &SsError) -> Option<String> {
    match err {
        SsError::Zbus(e) => zbus_remote_name(e),
        SsError::ZbusFdo(e) => fdo_name(e),
        _ => None,
    }
}

fn zbus_remote_name(err: &zbus::Error) -> Option<String> {
    match err {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str().to_owned()),
        zbus::Error::FDO(e) => fdo_name(e),
        _ => None,
    }
}

fn fdo_name(err: &zbus::fdo::Error) -> Option<String> {
    match err {
        zbus::fdo::Error::ZBus(inner) => zbus_remote_name(inner),
        other => Some(other.name().as_str().to_owned()),
    }
}

/// `err`, which happened while doing `action` (e.g. "store the token cache item"), as a
/// typed error.
///
/// - No Secret Service on the bus (the name has no owner and cannot be activated):
///   [`StorageUnavailable`](ErrorKind::StorageUnavailable), "no Secret Service …".
/// - The collection or item is locked, or the unlock prompt was dismissed (without a
///   display it always is): [`AccessDenied`](ErrorKind::AccessDenied), "… is locked …".
/// - The bus or the service refused access: [`AccessDenied`](ErrorKind::AccessDenied),
///   "permission denied …".
/// - The message exceeded a bus limit: [`TooLarge`](ErrorKind::TooLarge).
/// - The connection broke: [`StorageUnavailable`](ErrorKind::StorageUnavailable).
/// - An object that should exist does not (no default collection):
///   [`StorageUnavailable`](ErrorKind::StorageUnavailable).
/// - Anything else: [`Other`](ErrorKind::Other), with the D-Bus error as source.
pub(crate) fn from_secret_service(action: &str, err: SsError) -> Error {
    let name = remote_name(&err);
    let (kind, message) = match (&err, name.as_deref()) {
        (SsError::Locked | SsError::Prompt | SsError::PromptDisconnected, _)
        | (_, Some("org.freedesktop.Secret.Error.IsLocked")) => (
            ErrorKind::AccessDenied,
            format!(
                "could not {action}: the Secret Service collection is locked; \
                 unlock the keyring (for example by logging in to the desktop) and retry"
            ),
        ),
        (SsError::Unavailable, _)
        | (
            _,
            Some(
                "org.freedesktop.DBus.Error.ServiceUnknown"
                | "org.freedesktop.DBus.Error.NameHasNoOwner",
            ),
        ) => {
            return Error::with_source(
                ErrorKind::StorageUnavailable,
                format!(
                    "no Secret Service ({SECRETS_NAME}) on the bus: could not {action}: {err}; \
                     install and start a Secret Service such as gnome-keyring"
                ),
                err,
            );
        }
        (
            _,
            Some(
                "org.freedesktop.DBus.Error.AccessDenied" | "org.freedesktop.DBus.Error.AuthFailed",
            ),
        ) => (
            ErrorKind::AccessDenied,
            format!("could not {action}: permission denied by the Secret Service: {err}"),
        ),
        (_, Some("org.freedesktop.DBus.Error.LimitsExceeded")) => (
            ErrorKind::TooLarge,
            format!("could not {action}: the item is larger than the bus allows: {err}"),
        ),
        (
            _,
            Some(
                "org.freedesktop.Secret.Error.NoSuchObject"
                | "org.freedesktop.DBus.Error.UnknownObject",
            ),
        ) => (
            ErrorKind::StorageUnavailable,
            format!(
                "could not {action}: the Secret Service has no such object \
                 (no usable default collection?): {err}"
            ),
        ),
        (_, Some("org.freedesktop.DBus.Error.NoReply" | "org.freedesktop.DBus.Error.Timeout")) => (
            ErrorKind::StorageUnavailable,
            format!("could not {action}: the Secret Service did not answer in time: {err}"),
        ),
        _ if connection_is_broken(&err) => (
            ErrorKind::StorageUnavailable,
            format!("could not {action}: the D-Bus connection to the Secret Service failed: {err}"),
        ),
        _ => (
            ErrorKind::Other,
            format!("could not {action}: Secret Service error: {err}"),
        ),
    };
    Error::with_source(kind, message, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method_error(name: &'static str) -> SsError {
        let msg = zbus::message::Message::method_call("/", "Ping")
            .and_then(|b| b.build(&()))
            .expect("a message");
        SsError::Zbus(zbus::Error::MethodError(
            zbus::names::OwnedErrorName::try_from(name).expect("valid name"),
            Some("detail".to_owned()),
            msg,
        ))
    }

    #[test]
    fn causes_get_their_kind_and_a_message_that_names_them() {
        for (err, kind, says) in [
            (SsError::Locked, ErrorKind::AccessDenied, "locked"),
            (SsError::Prompt, ErrorKind::AccessDenied, "locked"),
            (
                method_error("org.freedesktop.Secret.Error.IsLocked"),
                ErrorKind::AccessDenied,
                "locked",
            ),
            (
                method_error("org.freedesktop.DBus.Error.ServiceUnknown"),
                ErrorKind::StorageUnavailable,
                "no Secret Service (org.freedesktop.secrets) on the bus",
            ),
            (
                SsError::Unavailable,
                ErrorKind::StorageUnavailable,
                "no Secret Service (org.freedesktop.secrets) on the bus",
            ),
            (
                method_error("org.freedesktop.DBus.Error.AccessDenied"),
                ErrorKind::AccessDenied,
                "permission denied",
            ),
            (
                method_error("org.freedesktop.DBus.Error.LimitsExceeded"),
                ErrorKind::TooLarge,
                "larger than the bus allows",
            ),
            (
                SsError::Zbus(zbus::Error::InputOutput(std::sync::Arc::new(
                    std::io::Error::from(std::io::ErrorKind::BrokenPipe),
                ))),
                ErrorKind::StorageUnavailable,
                "connection",
            ),
            (
                SsError::Crypto("bad padding"),
                ErrorKind::Other,
                "bad padding",
            ),
        ] {
            let shown = err.to_string();
            let mapped = from_secret_service("read the token cache item", err);
            assert_eq!(mapped.kind(), kind, "{shown} -> {mapped}");
            assert!(mapped.to_string().contains(says), "{shown} -> {mapped}");
            assert!(
                mapped
                    .to_string()
                    .starts_with("could not read the token cache item")
                    || mapped.to_string().starts_with("no Secret Service"),
                "{mapped}"
            );
        }
    }

    #[test]
    fn broken_connections_are_recognised() {
        assert!(connection_is_broken(&SsError::Zbus(
            zbus::Error::InputOutput(std::sync::Arc::new(std::io::Error::from(
                std::io::ErrorKind::BrokenPipe
            )))
        )));
        assert!(connection_is_broken(&method_error(
            "org.freedesktop.DBus.Error.ServiceUnknown"
        )));
        assert!(!connection_is_broken(&method_error(
            "org.freedesktop.Secret.Error.IsLocked"
        )));
        assert!(!connection_is_broken(&SsError::Locked));
    }
}
