//! The conformance suite checking itself: plugins that each break one rule of the
//! [`CachePersistence`](identity_cache_persistence::CachePersistence) contract, which the
//! suite must catch ([`broken`], and the Python plugins of `broken-plugins/` spoken to over
//! the JSON-lines protocol), and the tests that run the suite against them
//! (`cargo test -p conformance-selftest`).
//!
//! Unpublished: nothing outside this repository's tests of the suite should use these
//! plugins. The test doubles for users' own tests are in `identity-cache-mocks`.

#![warn(missing_docs)]

pub mod broken;
mod sync;
