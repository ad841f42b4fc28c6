//! Azure Identity integration (feature `azure`): a [`TokenCredential`] that keeps its
//! tokens in the persistent, cross-process cache, and logging controlled by
//! `AZURE_LOG_LEVEL`.
//!
//! [`TokenCredential`]: azure_core::credentials::TokenCredential

mod blocking;
mod credential;
#[cfg(feature = "device-code")]
pub mod device_code;
mod identity;
mod logging;

pub use credential::{PersistentTokenCredential, REFRESH_MARGIN};
pub use identity::CacheIdentity;
pub use logging::{
    AZURE_LOG_LEVEL, UnknownLogLevel, azure_log_level, init_logging_from_env, level_from_azure_name,
};
