//! The result of a run: one [`CaseReport`] per case, and its renderings.

mod human;
mod json;
mod junit;

use std::time::Duration;

use crate::failure::Failure;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut failure = Failure::new("rule <x> & y", "Some(3 bytes)", "None");
        failure.rerun = "conformance --filter 'a::failed' --seed 7".into();
        let case = |name: &str, outcome| CaseReport {
            name: name.into(),
            rule: "a rule".into(),
            outcome,
            duration: Duration::from_millis(5),
        };
        Report {
            plugin: "file".into(),
            description: "backend file, at /tmp/x".into(),
            seed: 7,
            property_cases: 32,
            thorough: false,
            cases: vec![
                case("a::passed", Outcome::Passed),
                case("a::failed", Outcome::Failed(failure.clone())),
                case(
                    "a::skipped",
                    Outcome::Skipped("plugin declares no lock".into()),
                ),
                case(
                    "a::gap",
                    Outcome::KnownGap {
                        reason: "not yet".into(),
                        failure: Some(failure),
                    },
                ),
            ],
        }
    }

    #[test]
    fn totals_and_verdict() {
        let report = sample();
        assert!(!report.passed());
        assert_eq!(
            report.totals(),
            Totals {
                passed: 1,
                failed: 1,
                skipped: 1,
                known_gaps: 1
            }
        );
        assert_eq!(report.failed(), vec!["a::failed"]);
    }

    #[test]
    fn json_has_every_case_with_its_failure() {
        let value: serde_json::Value = serde_json::from_str(&json(&sample())).expect("valid JSON");
        assert_eq!(value["passed"], false);
        assert_eq!(value["seed"], 7);
        assert_eq!(value["cases"][1]["outcome"], "failed");
        assert_eq!(value["cases"][1]["failure"]["expected"], "Some(3 bytes)");
        assert_eq!(value["cases"][2]["reason"], "plugin declares no lock");
        assert_eq!(value["cases"][3]["outcome"], "known_gap");
    }

    #[test]
    fn junit_counts_and_escapes() {
        let xml = junit(&sample());
        assert!(xml.contains(r#"tests="4" failures="1""#), "{xml}");
        assert!(xml.contains("rule &lt;x&gt; &amp; y"), "{xml}");
        assert!(
            xml.contains("<skipped message=\"plugin declares no lock\"/>"),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase").count(), 4);
    }

    #[test]
    fn human_report_says_what_broke_and_how_to_rerun() {
        let text = human(&sample());
        assert!(text.contains("---- a::failed (FAILED) ----"), "{text}");
        assert!(
            text.contains("rerun:       conformance --filter 'a::failed' --seed 7"),
            "{text}"
        );
        assert!(
            text.contains("FAILED: 1 passed, 1 failed, 1 skipped, 1 known gaps"),
            "{text}"
        );
    }
}
