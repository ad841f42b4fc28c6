//! Conformance suite for token-cache persistence plugins.
//!
//! Every check is a named [`Case`] (`area::case`) over a [`PluginFactory`]; a run executes
//! the applicable cases, never stops at the first failure, and returns a report. Plugins
//! written in Rust plug in with [`harness!`](macro@crate::harness); plugins in other languages
//! speak the JSON-lines [`protocol`].
//!
//! - [`PluginFactory`] makes plugins for [`Namespace`]s (and may provoke faults);
//! - [`cases`] holds the checks, one module per area, each case a public function;
//! - [`Suite`] runs cases (each on its own thread under a watchdog) into a [`Report`],
//!   rendered by [`report::human`], [`report::json`] and [`report::junit`].
//!
//! ```
//! use std::sync::Arc;
//! use conformance::{Config, FileFactory, Suite, all_cases, report, select};
//!
//! let suite = Suite::new(Arc::new(FileFactory::new()), Config::new())?;
//! let report = suite.run(&select(&all_cases(), &["contract::*".into()])?);
//! println!("{}", report::human(&report));
//! assert!(report.passed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod blob;
pub mod case;
pub mod cases;
pub mod ctx;
pub mod dir_faults;
pub mod expectations;
pub mod factory;
pub mod failure;
pub mod file_factory;
mod hang;
pub mod harness;
pub mod linearizability;
pub mod log_capture;
pub mod protocol;
pub mod registry;
pub mod report;
pub mod run;
pub mod settings;

pub use case::{Case, Need};
pub use ctx::{Config, Ctx};
pub use dir_faults::DirFaults;
pub use expectations::Expectations;
pub use factory::{Fault, Namespace, PluginFactory, Worker, WorkerLauncher};
pub use failure::{Failure, Stop, skip};
pub use file_factory::FileFactory;
pub use registry::{all_cases, applicable, select};
pub use report::{CaseReport, Outcome, Report};
pub use run::Suite;
pub use settings::EnvSettings;
