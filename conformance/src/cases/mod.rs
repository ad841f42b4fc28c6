//! The cases, one module per area. Each case is a public function checking one rule,
//! registered in its module's `CASES` with its name, rule and needs.

pub mod change;
pub(crate) mod check;
pub mod concurrency;
pub mod contract;
pub mod crash;
pub mod faults;
pub mod input;
pub(crate) mod kill;
pub mod lock;
pub mod model;
pub mod names;
pub mod process;
pub mod security;

/// Every area's cases, in report order.
pub const AREAS: &[&[crate::Case]] = &[
    contract::CASES,
    names::CASES,
    change::CASES,
    lock::CASES,
    model::CASES,
    concurrency::CASES,
    crash::CASES,
    process::CASES,
    security::CASES,
    input::CASES,
    faults::CASES,
];
