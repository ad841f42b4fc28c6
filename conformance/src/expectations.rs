//! Known gaps: cases a plugin author marks as expected to fail, with a reason.
//!
//! A known gap is still run and reported (as a known gap, or as "now passes" when it
//! passes); it only stops the failure from failing the run. The file is a small TOML
//! subset, one glob per line:
//!
//! ```toml
//! # why these gaps exist, and when they close
//! [known_gaps]
//! "lock::*" = "our lock is process-local until release 2.0"
//! contract::round_trip_8mib = "the backend stores at most 4 MiB"
//! ```

use std::path::Path;

/// Glob → reason pairs, first match wins.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    gaps: Vec<(glob::Pattern, String)>,
}

impl Expectations {
    /// No known gaps.
    pub fn none() -> Self {
        Expectations::default()
    }

    /// Reads an expectations file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read expectations {}: {e}", path.display()))?;
        Expectations::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the file format above; errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut gaps = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('[') {
                if line != "[known_gaps]" {
                    return Err(format!("line {line_no}: unknown section {line}"));
                }
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!(
                    "line {line_no}: expected `\"case glob\" = \"reason\"`"
                ));
            };
            let pattern = unquote(key.trim());
            let reason = unquote(value.trim());
            if pattern.is_empty() || reason.is_empty() {
                return Err(format!(
                    "line {line_no}: a known gap needs a case glob and a reason"
                ));
            }
            let glob = glob::Pattern::new(&pattern)
                .map_err(|e| format!("line {line_no}: bad glob {pattern:?}: {e}"))?;
            gaps.push((glob, reason));
        }
        Ok(Expectations { gaps })
    }

    /// Why `case` is a known gap, if it is one.
    pub fn gap(&self, case: &str) -> Option<&str> {
        self.gaps
            .iter()
            .find(|(glob, _)| glob.matches(case))
            .map(|(_, reason)| reason.as_str())
    }
}

fn unquote(text: &str) -> String {
    let trimmed = text.trim();
    trimmed
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(trimmed)
        .replace("\\\"", "\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_globs_and_reasons() {
        let exp = Expectations::parse(
            "# gaps\n[known_gaps]\n\"lock::*\" = \"no lock yet\"\ncontract::round_trip_8mib = \"4 MiB max\"\n",
        )
        .expect("valid");
        assert_eq!(exp.gap("lock::not_reentrant"), Some("no lock yet"));
        assert_eq!(exp.gap("contract::round_trip_8mib"), Some("4 MiB max"));
        assert_eq!(exp.gap("contract::absent_is_none"), None);
    }

    #[test]
    fn rejects_lines_without_reason() {
        assert!(Expectations::parse("lock::*\n").is_err());
        assert!(Expectations::parse("\"lock::*\" = \"\"\n").is_err());
        assert!(Expectations::parse("[other]\n").is_err());
    }
}
