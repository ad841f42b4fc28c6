//! The cases, one module per area. Each case is a public function checking one rule,
//! registered in its module's `CASES` with its name, rule and needs.

/// Every area's cases, in report order.
pub const AREAS: &[&[crate::Case]] = &[];
