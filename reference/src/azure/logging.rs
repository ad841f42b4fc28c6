//! `AZURE_LOG_LEVEL`, as the Azure SDKs document it, for this crate's `tracing` events.
//!
//! The JS SDK (`@azure/logger`) reads `AZURE_LOG_LEVEL` with the values, from most to
//! least verbose, `verbose`, `info`, `warning`, `error`; a level shows its own events and
//! the less verbose ones; unset means no logging; an unknown value is reported and logging
//! stays off. The Java SDK also accepts `debug`, `information`, `informational`, `warn`
//! and `err`, and so does this crate (case-insensitively).
//!
//! `verbose` maps to `tracing`'s TRACE (everything), `info` to INFO, `warning` to WARN,
//! `error` to ERROR.

use std::fmt;

use tracing::level_filters::LevelFilter;

/// The environment variable.
pub const AZURE_LOG_LEVEL: &str = "AZURE_LOG_LEVEL";

/// An `AZURE_LOG_LEVEL` value that is none of the documented ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLogLevel(pub String);

impl fmt::Display for UnknownLogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AZURE_LOG_LEVEL set to unknown log level {:?}; logging is not enabled. \
             Acceptable values: verbose, info, warning, error",
            self.0
        )
    }
}

impl std::error::Error for UnknownLogLevel {}

/// The `tracing` level for an `AZURE_LOG_LEVEL` value.
pub fn level_from_azure_name(name: &str) -> Result<LevelFilter, UnknownLogLevel> {
    match name.trim().to_ascii_lowercase().as_str() {
        "verbose" | "debug" => Ok(LevelFilter::TRACE),
        "info" | "information" | "informational" => Ok(LevelFilter::INFO),
        "warning" | "warn" => Ok(LevelFilter::WARN),
        "error" | "err" => Ok(LevelFilter::ERROR),
        _ => Err(UnknownLogLevel(name.to_owned())),
    }
}

/// The level `AZURE_LOG_LEVEL` asks for: `OFF` when unset or empty.
pub fn azure_log_level() -> Result<LevelFilter, UnknownLogLevel> {
    match std::env::var(AZURE_LOG_LEVEL) {
        Ok(value) if !value.trim().is_empty() => level_from_azure_name(&value),
        _ => Ok(LevelFilter::OFF),
    }
}

/// Installs a global subscriber writing this crate's events to stderr at the level of
/// `AZURE_LOG_LEVEL` (nothing when unset), the way the Azure SDKs log.
///
/// For programs without a subscriber of their own (the example uses it); a program with
/// one adds `tracing_subscriber::filter::Targets::new().with_target("identity_cache_persistence",
/// azure_log_level()?)` to it instead. An unknown value is reported on stderr and logging
/// stays off, as in the JS SDK. Returns `false` when a global subscriber was already set.
pub fn init_logging_from_env() -> bool {
    use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};
    let level = azure_log_level().unwrap_or_else(|unknown| {
        eprintln!("{unknown}");
        LevelFilter::OFF
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(Targets::new().with_target("identity_cache_persistence", level))
        .try_init()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_values_and_synonyms() {
        for (name, level) in [
            ("verbose", LevelFilter::TRACE),
            ("VERBOSE", LevelFilter::TRACE),
            ("info", LevelFilter::INFO),
            ("warning", LevelFilter::WARN),
            ("error", LevelFilter::ERROR),
            ("warn", LevelFilter::WARN),
            ("debug", LevelFilter::TRACE),
        ] {
            assert_eq!(level_from_azure_name(name), Ok(level), "{name}");
        }
        let err = level_from_azure_name("loud").expect_err("unknown");
        assert!(err.to_string().contains("verbose, info, warning, error"));
    }
}
