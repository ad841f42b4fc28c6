//! How a case ends when it does not pass: a broken rule ([`Failure`]) or a reason it does
//! not apply ([`Stop::Skipped`]).

use std::fmt;

/// The rule a hang breaks, whichever case saw it: a plugin call that never returns is
/// reported as a hang, not as a breach of the rule the case was checking.
pub const HANG_RULE: &str = "every call to the plugin returns, with a result or a typed error, within its time limit (a hung call blocks its caller for good)";

/// What broke: the rule, what was expected, what happened, and how to rerun the case.
///
/// Messages never contain blob bytes; cases describe blobs by length and short hash
/// ([`crate::blob::describe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The rule that broke (the case's [`Case::rule`](crate::Case::rule) or a more specific one).
    pub rule: String,
    /// What the rule demands here.
    pub expected: String,
    /// What the plugin did instead.
    pub actual: String,
    /// How to rerun exactly this case with the same seed; filled in by the runner.
    pub rerun: String,
}

impl Failure {
    /// A failure of `rule`; the runner fills in [`rerun`](Self::rerun).
    pub fn new(
        rule: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
        Failure {
            rule: rule.into(),
            expected: expected.into(),
            actual: actual.into(),
            rerun: String::new(),
        }
    }
}

/// How a case that did not pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The rule broke.
    Failed(Failure),
    /// The case does not apply here, for this reason: a condition only visible at run
    /// time, such as a factory hook answering `NotSupported`. Reported as skipped, never
    /// as passed.
    Skipped(String),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Self {
        Stop::Failed(failure)
    }
}

/// Ends a case as skipped with `reason`.
pub fn skip(reason: impl Into<String>) -> Stop {
    Stop::Skipped(reason.into())
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "rule broken: {}", self.rule)?;
        writeln!(f, "expected:    {}", self.expected)?;
        write!(f, "actual:      {}", self.actual)?;
        if !self.rerun.is_empty() {
            write!(f, "\nrerun:       {}", self.rerun)?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}
