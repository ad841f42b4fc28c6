//! The result of a run: one [`CaseReport`] per case, and its renderings.

mod human;
mod json;
mod junit;

use std::time::Duration;

use crate::case::Failure;

pub use human::render as human;
pub use json::render as json;
pub use junit::render as junit;

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The rule held.
    Passed,
    /// The rule broke.
    Failed(Failure),
    /// The case does not apply; the reason says why (a capability the plugin does not
    /// declare, a hook the factory does not provide).
    Skipped(String),
    /// The case is marked as a known gap in the expectations; it was run anyway.
    /// `failure` is `None` when it passed (the expectation is out of date).
    KnownGap {
        /// The reason from the expectations file.
        reason: String,
        /// What broke, if it still breaks.
        failure: Option<Failure>,
    },
}

impl Outcome {
    /// A short word for tables: `pass`, `FAIL`, `skip`, `gap`, `gap (passes)`.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Passed => "pass",
            Outcome::Failed(_) => "FAIL",
            Outcome::Skipped(_) => "skip",
            Outcome::KnownGap {
                failure: Some(_), ..
            } => "gap",
            Outcome::KnownGap { failure: None, .. } => "gap (passes)",
        }
    }

    /// True for a failure that fails the run (known gaps do not).
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_))
    }
}

/// One case's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    /// `area::case`.
    pub name: String,
    /// The rule the case checks.
    pub rule: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it ran.
    pub duration: Duration,
}

/// A whole run: what was checked, with which seed, and every case's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The factory's label.
    pub plugin: String,
    /// The plugin's description (backend and location), or why it could not be described.
    pub description: String,
    /// The seed of the run.
    pub seed: u64,
    /// Property cases per property check.
    pub property_cases: u32,
    /// Whether the run was thorough.
    pub thorough: bool,
    /// Every selected case, in registry order.
    pub cases: Vec<CaseReport>,
}

/// Counts of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases that did not apply.
    pub skipped: usize,
    /// Known gaps (failing or not).
    pub known_gaps: usize,
}

impl Report {
    /// True when every applicable case passed (known gaps and skips do not fail a run).
    pub fn passed(&self) -> bool {
        !self.cases.iter().any(|c| c.outcome.is_failure())
    }

    /// Outcome counts.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for case in &self.cases {
            match case.outcome {
                Outcome::Passed => totals.passed += 1,
                Outcome::Failed(_) => totals.failed += 1,
                Outcome::Skipped(_) => totals.skipped += 1,
                Outcome::KnownGap { .. } => totals.known_gaps += 1,
            }
        }
        totals
    }

    /// The report of `name`, if that case was run.
    pub fn case(&self, name: &str) -> Option<&CaseReport> {
        self.cases.iter().find(|c| c.name == name)
    }

    /// Names of the failed cases.
    pub fn failed(&self) -> Vec<&str> {
        self.cases
            .iter()
            .filter(|c| c.outcome.is_failure())
            .map(|c| c.name.as_str())
            .collect()
    }
}
