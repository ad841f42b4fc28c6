//! Conformance suite for token-cache persistence plugins.
//!
//! Every check is a named [`Case`] (`area::case`) over a [`PluginFactory`]; a run executes
//! the applicable cases, never stops at the first failure, and returns a report. Plugins
//! written in Rust plug in with [`harness!`](crate::harness); plugins in other languages
//! speak the JSON-lines [`protocol`].

pub mod blob;
pub mod case;
pub mod cases;
pub mod ctx;
pub mod expectations;
pub mod factory;
pub mod file_factory;
pub mod harness;
pub mod linearizability;
pub mod log_capture;
pub mod protocol;
pub mod registry;
pub mod report;
pub mod run;

pub use case::{Case, Failure, Need};
pub use ctx::{Config, Ctx};
pub use expectations::Expectations;
pub use factory::{Fault, Namespace, PluginFactory, Worker, WorkerLauncher};
pub use file_factory::FileFactory;
pub use registry::{all_cases, applicable, select};
pub use report::{CaseReport, Outcome, Report};
pub use run::{Suite, skip};
