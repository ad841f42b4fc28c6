//! The report for people: a table of every case, then the details of what did not pass.

use std::fmt::Write as _;

use super::{Outcome, Report};

/// Renders `report` as a plain-text table followed by failure details and a summary line.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "conformance of {} ({})",
        report.plugin, report.description
    );
    let _ = writeln!(
        out,
        "seed {}, {} property cases{}",
        report.seed,
        report.property_cases,
        if report.thorough { ", thorough" } else { "" }
    );
    let width = report
        .cases
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<width$}  {:<12}  {:>8}  note",
        "case", "outcome", "time"
    );
    let _ = writeln!(out, "{}", "-".repeat(width + 40));
    for case in &report.cases {
        let note = match &case.outcome {
            Outcome::Passed => String::new(),
            Outcome::Failed(f) => f.rule.clone(),
            Outcome::Skipped(reason) => reason.clone(),
            Outcome::KnownGap { reason, .. } => reason.clone(),
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<12}  {:>6}ms  {}",
            case.name,
            case.outcome.word(),
            case.duration.as_millis(),
            note
        );
    }
    let details: Vec<_> = report
        .cases
        .iter()
        .filter_map(|c| match &c.outcome {
            Outcome::Failed(f) => Some((c, "FAILED", f)),
            Outcome::KnownGap {
                failure: Some(f), ..
            } => Some((c, "known gap, still failing", f)),
            _ => None,
        })
        .collect();
    for (case, label, failure) in details {
        let _ = writeln!(out, "\n---- {} ({label}) ----\n{failure}", case.name);
    }
    for case in &report.cases {
        if let Outcome::KnownGap {
            failure: None,
            reason,
        } = &case.outcome
        {
            let _ = writeln!(
                out,
                "\n---- {} (known gap now passes: remove it from the expectations) ----\nreason was: {reason}",
                case.name
            );
        }
    }
    let t = report.totals();
    let _ = writeln!(
        out,
        "\n{}: {} passed, {} failed, {} skipped, {} known gaps",
        if report.passed() { "PASSED" } else { "FAILED" },
        t.passed,
        t.failed,
        t.skipped,
        t.known_gaps
    );
    out
}
