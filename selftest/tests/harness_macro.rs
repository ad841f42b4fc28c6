//! The one-line harness a Rust implementer writes, here over the correct in-memory plugin of
//! the broken-plugin catalogue (its control): every case becomes a filterable libtest trial
//! (`-- contract::`).

use conformance_selftest::broken::memory::{Flaw, MemoryFactory};

conformance::harness!(|| MemoryFactory::new(Flaw::None));
