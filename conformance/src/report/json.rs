//! The report for machines: one JSON document.

use serde_json::{Value, json};

use super::{Outcome, Report};
use crate::failure::Failure;

/// Renders `report` as pretty-printed JSON:
/// `{plugin, description, seed, property_cases, thorough, passed, totals, cases: [{name,
/// rule, outcome, duration_ms, reason?, failure?: {rule, expected, actual, rerun}}]}`.
pub fn render(report: &Report) -> String {
    let cases: Vec<Value> = report
        .cases
        .iter()
        .map(|c| {
            let mut entry = json!({
                "name": c.name,
                "rule": c.rule,
                "duration_ms": c.duration.as_millis() as u64,
            });
            let (outcome, reason, failure) = match &c.outcome {
                Outcome::Passed => ("passed", None, None),
                Outcome::Failed(f) => ("failed", None, Some(f)),
                Outcome::Skipped(r) => ("skipped", Some(r), None),
                Outcome::KnownGap { reason, failure } => {
                    ("known_gap", Some(reason), failure.as_ref())
                }
            };
            entry["outcome"] = json!(outcome);
            if let Some(reason) = reason {
                entry["reason"] = json!(reason);
            }
            if let Some(failure) = failure {
                entry["failure"] = failure_json(failure);
            }
            entry
        })
        .collect();
    let t = report.totals();
    let doc = json!({
        "plugin": report.plugin,
        "description": report.description,
        "seed": report.seed,
        "property_cases": report.property_cases,
        "thorough": report.thorough,
        "passed": report.passed(),
        "totals": {
            "passed": t.passed,
            "failed": t.failed,
            "skipped": t.skipped,
            "known_gaps": t.known_gaps,
        },
        "cases": cases,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn failure_json(f: &Failure) -> Value {
    json!({
        "rule": f.rule,
        "expected": f.expected,
        "actual": f.actual,
        "rerun": f.rerun,
    })
}
