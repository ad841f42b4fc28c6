//! Test support shared by several test crates (`mod support;`): each uses part of it.
#![allow(dead_code)]

pub mod authority;
pub mod logs;
pub mod quarantine;
pub mod worker;
