//! One connection to the Redis server, opened on first use and reopened on the call after
//! it broke, and the mapping of the client's errors to error kinds.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use ::redis::{Client, Connection, RedisError};

use crate::error::{Error, ErrorKind, Result};

/// How long connecting, and each read or write on the socket, may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) io: Duration,
}

/// A lazily opened connection shared by the calls of one handle (and its watchdog).
///
/// A call that fails on the connection itself (I/O, timeout, a reply that did not parse)
/// drops it, since the stream may be out of step; the next call opens a new one. An error
/// the server answered with leaves the connection in use.
pub(crate) struct Link {
    client: Client,
    timeouts: Timeouts,
    /// For error messages: where the server is, never the URL (it may hold a password).
    location: String,
    connection: Mutex<Option<Connection>>,
}

impl Link {
    pub(crate) fn new(client: Client, timeouts: Timeouts, location: String) -> Self {
        Link {
            client,
            timeouts,
            location,
            connection: Mutex::new(None),
        }
    }

    /// Runs `call` on the connection, opening it first if needed. `what` names the
    /// operation in the error message ("save the cache").
    pub(crate) fn run<T>(
        &self,
        what: &str,
        call: impl FnOnce(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T> {
        // A panic elsewhere while holding the mutex leaves at worst a connection in an
        // unknown state; the error path below drops it.
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let connection = match &mut *slot {
            Some(connection) => connection,
            empty => empty.insert(self.open().map_err(|e| self.error(what, e))?),
        };
        call(connection).map_err(|e| {
            if e.code().is_none() {
                *slot = None;
            }
            self.error(what, e)
        })
    }

    fn open(&self) -> Result<Connection, RedisError> {
        let mut connection = self
            .client
            .get_connection_with_timeout(self.timeouts.connect)?;
        connection.set_read_timeout(Some(self.timeouts.io))?;
        connection.set_write_timeout(Some(self.timeouts.io))?;
        // Names the connection in CLIENT LIST, so an operator sees which process holds
        // it. A user without the CLIENT permission is refused; that changes nothing else.
        let named: Result<::redis::Value, RedisError> = ::redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(format!("identity-cache:{}", std::process::id()))
            .query(&mut connection);
        match named {
            Err(e) if e.code().is_none() => return Err(e),
            _ => {}
        }
        tracing::debug!(server = %self.location, "connected to redis");
        Ok(connection)
    }

    /// The error for a failed `what`, with the client's error as `source()`.
    pub(crate) fn error(&self, what: &str, e: RedisError) -> Error {
        let (kind, why) = classify(&e);
        Error::with_source(
            kind,
            format!("could not {what} at {}: {why}: {e}", self.location),
            e,
        )
    }

    /// Where the server is, for messages and descriptions.
    pub(crate) fn location(&self) -> &str {
        &self.location
    }
}

/// The kind of a client error, and a few words on what it means for the cache.
///
/// Server errors are told apart by their code (the first word of the reply); without a
/// code the error happened on the connection: the server cannot be reached. A transaction
/// the server discarded (`EXECABORT`) is classified by the error of its first command,
/// which says why (`OOM` on a full server).
fn classify(e: &RedisError) -> (ErrorKind, &'static str) {
    let first_of_transaction = match e.code() {
        Some("EXECABORT") => e
            .clone()
            .into_server_errors()
            .and_then(|errors| errors.first().map(|(_, error)| error.code().to_owned())),
        _ => None,
    };
    match first_of_transaction.as_deref().or(e.code()) {
        Some("OOM") => (
            ErrorKind::StorageFull,
            "the server is out of memory (maxmemory reached, and the policy evicts nothing)",
        ),
        Some("NOPERM") => (
            ErrorKind::AccessDenied,
            "the server's ACL does not let this user use the key",
        ),
        Some("NOAUTH" | "WRONGPASS") => (
            ErrorKind::AccessDenied,
            "the server refused the credentials",
        ),
        Some("READONLY") => (ErrorKind::AccessDenied, "the server is a read-only replica"),
        Some("WRONGTYPE") => (
            ErrorKind::CorruptData,
            "the key holds something other than a cache record; it was left as it is",
        ),
        Some("LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN" | "MISCONF") => (
            ErrorKind::StorageUnavailable,
            "the server cannot serve the request now",
        ),
        Some(_) => (ErrorKind::Other, "the server refused the request"),
        None if e.kind() == ::redis::ErrorKind::AuthenticationFailed => (
            ErrorKind::AccessDenied,
            "the server refused the credentials",
        ),
        None => (
            ErrorKind::StorageUnavailable,
            "the server could not be reached",
        ),
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("server", &self.location)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str) -> RedisError {
        ::redis::make_extension_error(code.to_owned(), Some("detail".to_owned()))
    }

    #[test]
    fn server_errors_are_classified_by_code() {
        for (code, kind) in [
            ("OOM", ErrorKind::StorageFull),
            ("NOPERM", ErrorKind::AccessDenied),
            ("WRONGPASS", ErrorKind::AccessDenied),
            ("READONLY", ErrorKind::AccessDenied),
            ("WRONGTYPE", ErrorKind::CorruptData),
            ("LOADING", ErrorKind::StorageUnavailable),
            ("SOMETHINGNEW", ErrorKind::Other),
        ] {
            assert_eq!(classify(&server(code)).0, kind, "{code}");
        }
    }

    #[test]
    fn connection_errors_are_storage_unavailable() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&refused).0, ErrorKind::StorageUnavailable);
    }
}
