//! Deliberately broken plugins (reserved; the catalogue is not built yet).
//!
//! Each plugin here will break exactly one rule of the
//! [`CachePersistence`](identity_cache_persistence::CachePersistence) contract (a lost
//! write, a torn read, a lock that does not exclude, a change token that does not move,
//! ...), so the conformance suite can prove that each of its checks fails when the rule is
//! broken. They will be built on [`InMemoryPersistence`](crate::InMemoryPersistence), the
//! correct plugin, changing one behaviour each, one module per plugin.
//!
//! Nothing outside a test of the suite itself should use them.
