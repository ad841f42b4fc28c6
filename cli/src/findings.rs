//! What `doctor` reports: findings, each ok, a warning or a problem with its exit code and
//! fix, and how they print.

use serde::Serialize;

use crate::exit::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Worth knowing; does not make the cache unhealthy.
    Warning,
    /// Makes the cache unhealthy; carries an exit code.
    Problem,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What was checked: `secure_storage`, `directory`, `file`, `lock`, `cache`.
    pub check: &'static str,
    pub status: Status,
    /// A stable name of the finding, e.g. `no_bus`, `mode_too_wide`.
    pub id: &'static str,
    /// The exit code of a problem (or of what a warning would be without the option that
    /// made it one).
    pub exit_code: Option<u8>,
    pub summary: String,
    pub detail: Option<String>,
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, id: &'static str, summary: impl Into<String>) -> Self {
        Finding {
            check,
            status: Status::Ok,
            id,
            exit_code: None,
            summary: summary.into(),
            detail: None,
            fix: None,
        }
    }

    pub fn problem(
        check: &'static str,
        id: &'static str,
        code: Code,
        summary: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Finding {
            check,
            status: Status::Problem,
            id,
            exit_code: Some(code.value()),
            summary: summary.into(),
            detail: None,
            fix: Some(fix.into()),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn warning(mut self) -> Self {
        self.status = Status::Warning;
        self
    }
}

/// The report: the findings in the order checked, and the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub directory: String,
    pub profile: &'static str,
    pub bus: String,
    pub healthy: bool,
    pub exit_code: u8,
    pub findings: Vec<Finding>,
}

impl Report {
    /// The exit code: that of the first problem, or 0.
    pub fn verdict(findings: &[Finding]) -> u8 {
        findings
            .iter()
            .find(|f| f.status == Status::Problem)
            .and_then(|f| f.exit_code)
            .unwrap_or(0)
    }

    pub fn print_human(&self) {
        println!(
            "Checking the token caches in {} (keyring profile {}, {}):",
            self.directory, self.profile, self.bus
        );
        for finding in &self.findings {
            let tag = match finding.status {
                Status::Ok => "ok     ",
                Status::Warning => "warning",
                Status::Problem => "PROBLEM",
            };
            let code = match (finding.status, finding.exit_code) {
                (Status::Problem, Some(code)) => format!(" [exit code {code}]"),
                _ => String::new(),
            };
            println!("\n{tag}  {}{code}", finding.summary);
            if let Some(detail) = &finding.detail {
                println!("         {detail}");
            }
            if let Some(fix) = &finding.fix {
                for (i, line) in fix.lines().enumerate() {
                    let lead = if i == 0 { "Fix: " } else { "     " };
                    println!("         {lead}{line}");
                }
            }
        }
        let problems = self
            .findings
            .iter()
            .filter(|f| f.status == Status::Problem)
            .count();
        if self.healthy {
            println!("\nHealthy.");
        } else {
            println!(
                "\nNot healthy: {problems} problem{}. Exit code {} (see --help).",
                if problems == 1 { "" } else { "s" },
                self.exit_code
            );
        }
    }
}
