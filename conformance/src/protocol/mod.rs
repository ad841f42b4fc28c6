//! The JSON-lines process protocol (being built).
