//! The Secret Service as this tool sees it: whether it can hold the caches, which items it
//! has, and the persistence of one cache in it. Linux only; elsewhere every question
//! answers "not inspected on this platform".

use std::path::Path;

use serde::Serialize;

use crate::{
    context::Context,
    exit::{Code, Failure},
};

/// Why the keyring cannot be used, with the exit code of its cause.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(skip)]
    pub code: Code,
    /// A stable name of the cause: `no_bus`, `no_service`, `locked`, `no_default_collection`,
    /// `failed`, `unsupported`.
    pub cause: &'static str,
    /// The cause in plain words, with the detail the system gave.
    pub message: String,
}

/// A token cache item, without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub profile: &'static str,
    pub cache_name: Option<String>,
    pub label: String,
    pub locked: bool,
    pub size: Option<usize>,
    pub modified: Option<String>,
}

#[cfg(target_os = "linux")]
mod imp {
    use std::path::Path;

    use identity_cache_persistence::{
        CachePersistence, SecretServicePersistence,
        secret_service::{ServiceProblem, cache_items, check_service},
    };

    use super::{Item, Problem};
    use crate::{context::Context, exit::Code, time::rfc3339};

    pub fn check(context: &Context) -> Result<(), Problem> {
        check_service(context.dbus_address.as_deref()).map_err(problem)
    }

    pub fn items(context: &Context) -> Result<Vec<Item>, Problem> {
        let items = cache_items(context.dbus_address.as_deref()).map_err(problem)?;
        Ok(items
            .into_iter()
            .map(|item| Item {
                profile: item.profile.as_str(),
                cache_name: item.cache_name,
                label: item.label,
                locked: item.locked,
                size: item.size,
                modified: item.modified.and_then(rfc3339),
            })
            .collect())
    }

    pub fn persistence(
        context: &Context,
        path: &Path,
    ) -> Result<Box<dyn CachePersistence>, Problem> {
        Ok(Box::new(open(context, path)?))
    }

    /// The SDKs' validation probe, once [`check`] passed.
    pub fn validate(context: &Context, path: &Path) -> Result<(), Problem> {
        open(context, path)?.validate().map_err(|e| Problem {
            code: Code::KeyringUnusable,
            cause: "failed",
            message: format!("the validation probe failed: {e}"),
        })
    }

    fn open(context: &Context, path: &Path) -> Result<SecretServicePersistence, Problem> {
        let persistence =
            SecretServicePersistence::new(path, context.profile).map_err(|e| Problem {
                code: Code::Usage,
                cause: "failed",
                message: e.to_string(),
            })?;
        Ok(match &context.dbus_address {
            Some(address) => persistence.with_bus_address(address.clone()),
            None => persistence,
        })
    }

    fn problem(problem: ServiceProblem) -> Problem {
        let (code, cause) = match &problem {
            ServiceProblem::NoBus { .. } => (Code::NoBus, "no_bus"),
            ServiceProblem::NoService { .. } => (Code::NoSecretService, "no_service"),
            ServiceProblem::Locked { .. } => (Code::KeyringLocked, "locked"),
            ServiceProblem::NoDefaultCollection => (Code::KeyringUnusable, "no_default_collection"),
            _ => (Code::KeyringUnusable, "failed"),
        };
        Problem {
            code,
            cause,
            message: problem.to_string(),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::path::Path;

    use identity_cache_persistence::CachePersistence;

    use super::{Item, Problem};
    use crate::{context::Context, exit::Code};

    fn unsupported() -> Problem {
        Problem {
            code: Code::KeyringUnusable,
            cause: "unsupported",
            message: "this tool inspects the Secret Service of Linux only".to_owned(),
        }
    }

    pub fn check(_: &Context) -> Result<(), Problem> {
        Err(unsupported())
    }

    pub fn items(_: &Context) -> Result<Vec<Item>, Problem> {
        Err(unsupported())
    }

    pub fn persistence(_: &Context, _: &Path) -> Result<Box<dyn CachePersistence>, Problem> {
        Err(unsupported())
    }

    pub fn validate(_: &Context, _: &Path) -> Result<(), Problem> {
        Err(unsupported())
    }
}

/// Whether the Secret Service at the context's bus can hold the caches now (reads and
/// writes nothing).
pub fn check(context: &Context) -> Result<(), Problem> {
    imp::check(context)
}

/// The token cache items of every profile layout.
pub fn items(context: &Context) -> Result<Vec<Item>, Problem> {
    imp::items(context)
}

/// The Secret Service persistence of the cache whose marker is `path`.
pub fn persistence(
    context: &Context,
    path: &Path,
) -> Result<Box<dyn identity_cache_persistence::CachePersistence>, Problem> {
    imp::persistence(context, path)
}

/// The write/read/delete probe the SDKs run before they trust the keyring.
pub fn validate(context: &Context, path: &Path) -> Result<(), Problem> {
    imp::validate(context, path)
}

impl From<Problem> for Failure {
    fn from(problem: Problem) -> Self {
        Failure::new(problem.code, problem.message)
    }
}

/// [`check`] before reading or deleting the keyring cache `name`: a keyring problem is the
/// failure when a marker file says the cache is there; without one, the cache is simply
/// not found, and the message says the keyring could not be searched.
pub fn check_for(context: &Context, name: &str, marker_exists: bool) -> Result<(), Failure> {
    match check(context) {
        Ok(()) => Ok(()),
        Err(problem) if marker_exists => Err(problem.into()),
        Err(problem) => Err(Failure::new(
            Code::NotFound,
            format!(
                "no cache named {name:?} in {}, and the Secret Service could not be searched: {}",
                context.dir.display(),
                problem.message
            ),
        )),
    }
}
