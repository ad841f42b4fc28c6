//! Every case of the suite, and selection by name and by what the plugin declares.

use identity_cache_persistence::Capabilities;

use crate::{case::Case, cases};

/// Every case, in a stable order (area by area).
pub fn all_cases() -> Vec<Case> {
    let mut all = Vec::new();
    for area in cases::AREAS {
        all.extend_from_slice(area);
    }
    all
}

/// The cases whose names match any of `filters` (all cases when `filters` is empty).
///
/// A filter with a glob character (`*`, `?`, `[`) is a glob over the whole name
/// (`lock::*`); any other filter matches names containing it (`lock::`, `round_trip`),
/// as libtest filters do. An invalid glob is an error naming it.
pub fn select(cases: &[Case], filters: &[String]) -> Result<Vec<Case>, String> {
    let mut matchers = Vec::new();
    for filter in filters {
        if filter.contains(['*', '?', '[']) {
            let pattern =
                glob::Pattern::new(filter).map_err(|e| format!("bad filter {filter:?}: {e}"))?;
            matchers.push(Matcher::Glob(pattern));
        } else {
            matchers.push(Matcher::Substring(filter.clone()));
        }
    }
    Ok(cases
        .iter()
        .filter(|case| matchers.is_empty() || matchers.iter().any(|m| m.matches(case.name)))
        .copied()
        .collect())
}

/// `Ok(())` when `case` applies to a plugin with `caps` (and a launcher, if `has_launcher`),
/// otherwise the reason it does not, for the report.
pub fn applicable(case: &Case, caps: &Capabilities, has_launcher: bool) -> Result<(), String> {
    match case
        .needs
        .iter()
        .find_map(|need| need.unmet(caps, has_launcher))
    {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

enum Matcher {
    Glob(glob::Pattern),
    Substring(String),
}

impl Matcher {
    fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Glob(pattern) => pattern.matches(name),
            Matcher::Substring(part) => name.contains(part.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let cases = all_cases();
        let mut names: Vec<_> = cases.iter().map(|c| c.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate case names");
        for case in &cases {
            let (area, rest) = case.name.split_once("::").expect("area::case");
            assert!(
                !area.is_empty() && !rest.is_empty() && !rest.contains("::"),
                "{}",
                case.name
            );
            assert!(!case.rule.is_empty(), "{} has no rule", case.name);
        }
    }

    #[test]
    fn filters_select_by_glob_and_substring() {
        let cases = all_cases();
        let lock = select(&cases, &["lock::*".into()]).expect("valid glob");
        assert!(lock.iter().all(|c| c.name.starts_with("lock::")));
        let sub = select(&cases, &["lock::".into()]).expect("substring");
        assert_eq!(lock.len(), sub.len());
        assert_eq!(select(&cases, &[]).expect("no filter").len(), cases.len());
        assert!(select(&cases, &["[".into()]).is_err());
    }
}
