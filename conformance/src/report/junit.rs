//! The report for CI systems: JUnit XML.
//!
//! Written by hand rather than with a crate: the format used here is five elements and
//! one escaping rule, and a dependency would be larger than this file.

use std::fmt::Write as _;

use super::{Outcome, Report};

/// Renders `report` as one `<testsuite>` named after the plugin, one `<testcase>` per
/// case (classname = area), with `<failure>` for failures, `<skipped>` for skips and
/// known gaps (the reason as message; a still-failing gap carries its failure as text).
pub fn render(report: &Report) -> String {
    let t = report.totals();
    let total_time: f64 = report.cases.iter().map(|c| c.duration.as_secs_f64()).sum();
    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<testsuites name="conformance" tests="{}" failures="{}" skipped="{}" time="{total_time:.3}">"#,
        report.cases.len(),
        t.failed,
        t.skipped + t.known_gaps
    );
    let _ = writeln!(
        out,
        r#"  <testsuite name="{}" tests="{}" failures="{}" errors="0" skipped="{}" time="{total_time:.3}">"#,
        escape(&report.plugin),
        report.cases.len(),
        t.failed,
        t.skipped + t.known_gaps
    );
    let _ = writeln!(out, "    <properties>");
    let _ = writeln!(
        out,
        r#"      <property name="seed" value="{}"/>"#,
        report.seed
    );
    let _ = writeln!(
        out,
        r#"      <property name="property_cases" value="{}"/>"#,
        report.property_cases
    );
    let _ = writeln!(
        out,
        r#"      <property name="description" value="{}"/>"#,
        escape(&report.description)
    );
    let _ = writeln!(out, "    </properties>");
    for case in &report.cases {
        let area = case.name.split("::").next().unwrap_or("");
        let open = format!(
            r#"    <testcase name="{}" classname="{}" time="{:.3}""#,
            escape(&case.name),
            escape(area),
            case.duration.as_secs_f64()
        );
        match &case.outcome {
            Outcome::Passed => {
                let _ = writeln!(out, "{open}/>");
            }
            Outcome::Failed(f) => {
                let _ = writeln!(out, "{open}>");
                let _ = writeln!(
                    out,
                    r#"      <failure message="{}" type="rule">{}</failure>"#,
                    escape(&f.rule),
                    escape(&f.to_string())
                );
                let _ = writeln!(out, "    </testcase>");
            }
            Outcome::Skipped(reason) => {
                let _ = writeln!(out, "{open}>");
                let _ = writeln!(out, r#"      <skipped message="{}"/>"#, escape(reason));
                let _ = writeln!(out, "    </testcase>");
            }
            Outcome::KnownGap { reason, failure } => {
                let _ = writeln!(out, "{open}>");
                let text = match failure {
                    Some(f) => f.to_string(),
                    None => "passes now: remove it from the expectations".into(),
                };
                let _ = writeln!(
                    out,
                    r#"      <skipped message="known gap: {}">{}</skipped>"#,
                    escape(reason),
                    escape(&text)
                );
                let _ = writeln!(out, "    </testcase>");
            }
        }
    }
    let _ = writeln!(out, "  </testsuite>");
    let _ = writeln!(out, "</testsuites>");
    out
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 cannot carry.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b>&\"c'\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&apos;\u{fffd}"
        );
    }
}
