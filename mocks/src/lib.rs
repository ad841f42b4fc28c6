//! Test doubles for the persistence trait (being built).
