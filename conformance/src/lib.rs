//! Conformance suite for token-cache persistence plugins (being built).

pub mod protocol;
