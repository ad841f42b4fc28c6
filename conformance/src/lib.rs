//! Conformance suite for token-cache persistence plugins (being built).
