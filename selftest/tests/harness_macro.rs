//! The one-line harness a Rust implementer writes, here over the suite's own in-memory
//! plugin: every case becomes a filterable libtest trial (`-- contract::`).

mod common;

conformance::harness!(|| common::MemoryFactory::new(common::Break::None));
