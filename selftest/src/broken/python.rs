//! The out-of-process broken plugins of `selftest/broken-plugins/*.py`, as their
//! docstrings describe them: each is the suite's example Python plugin with one thing
//! changed, and names the rule it breaks (`RULE = "..."`), the case that must catch it
//! (`EXPECTED_CASE = "..."`) and, optionally, other cases that must fail too
//! (`ALSO = "case, case"`).

use std::path::PathBuf;

/// The directory of the scripts.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/broken-plugins");

/// One broken plugin script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The script's file stem.
    pub name: String,
    /// The script.
    pub path: PathBuf,
    /// The rule it breaks.
    pub rule: String,
    /// The case that must fail for it.
    pub expected_case: String,
    /// Other cases that must fail for it too.
    pub also: Vec<String>,
}

impl Program {
    /// Every case that must fail for it: the expected case first.
    pub fn must_fail(&self) -> Vec<String> {
        std::iter::once(self.expected_case.clone())
            .chain(self.also.iter().cloned())
            .collect()
    }
}

/// Every script of [`DIR`] but those starting with `_` (helpers), sorted by name.
///
/// Panics when the directory cannot be read or a script lacks `RULE` or `EXPECTED_CASE`:
/// the catalogue is then broken, and its tests must say so.
pub fn programs() -> Vec<Program> {
    let mut found: Vec<Program> = std::fs::read_dir(DIR)
        .unwrap_or_else(|e| panic!("{DIR}: {e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "py")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('_'))
        })
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Program {
                rule: field(&text, "RULE")
                    .unwrap_or_else(|| panic!("{name}: no RULE in its docstring")),
                expected_case: field(&text, "EXPECTED_CASE")
                    .unwrap_or_else(|| panic!("{name}: no EXPECTED_CASE in its docstring")),
                also: field(&text, "ALSO")
                    .map(|list| list.split(',').map(|c| c.trim().to_string()).collect())
                    .unwrap_or_default(),
                name,
                path,
            }
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// `KEY = "value"` from a script's docstring.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(key)?.trim().strip_prefix('=')?;
        Some(rest.trim().trim_matches('"').to_string())
    })
}
