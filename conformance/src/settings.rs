//! The run settings a user can give through the environment, read here and nowhere else.
//!
//! The test harness takes its settings only from the environment (cargo owns the command
//! line); the `conformance` CLI takes the same variables, with its flags over them. Both
//! read them through [`EnvSettings::read`], so a variable means the same in both and a
//! bad value is refused the same way, instead of being ignored by one and not the other.

use std::{ffi::OsString, path::PathBuf, str::FromStr};

use crate::ctx::Config;

/// `CONFORMANCE_SEED`: the seed of every randomized choice.
pub const SEED: &str = "CONFORMANCE_SEED";
/// `CONFORMANCE_CASES`: the number of property cases.
pub const CASES: &str = "CONFORMANCE_CASES";
/// `CONFORMANCE_THOROUGH`: `1`, `true` or `yes` for the release-gating run.
pub const THOROUGH: &str = "CONFORMANCE_THOROUGH";
/// `CONFORMANCE_EXPECTATIONS`: a file of known gaps.
pub const EXPECTATIONS: &str = "CONFORMANCE_EXPECTATIONS";

/// What the environment sets; `None` (or `false`) where a variable is unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvSettings {
    /// [`SEED`].
    pub seed: Option<u64>,
    /// [`CASES`].
    pub cases: Option<u32>,
    /// [`THOROUGH`].
    pub thorough: bool,
    /// [`EXPECTATIONS`].
    pub expectations: Option<PathBuf>,
}

impl EnvSettings {
    /// Reads the variables of the process environment.
    ///
    /// - Unset, or set to the empty string: not set.
    /// - A seed or case count that is not a number, or a [`THOROUGH`] value other than
    ///   `1`/`true`/`yes`/`0`/`false`/`no`: `Err` naming the variable and the value.
    pub fn read() -> Result<Self, String> {
        Self::read_from(|name| std::env::var_os(name))
    }

    /// [`read`](Self::read) from `var` instead of the process environment.
    pub fn read_from(var: impl Fn(&str) -> Option<OsString>) -> Result<Self, String> {
        let text = |name: &str| -> Result<Option<String>, String> {
            match var(name) {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v) => v
                    .into_string()
                    .map(Some)
                    .map_err(|v| format!("{name}={v:?} is not UTF-8")),
            }
        };
        let thorough = match text(THOROUGH)?.as_deref() {
            None | Some("0" | "false" | "no") => false,
            Some("1" | "true" | "yes") => true,
            Some(other) => {
                return Err(format!(
                    "{THOROUGH}={other:?}: expected 1, true or yes (or 0, false, no)"
                ));
            }
        };
        Ok(EnvSettings {
            seed: text(SEED)?
                .map(|v| parse(SEED, &v, "a non-negative integer"))
                .transpose()?,
            cases: text(CASES)?
                .map(|v| parse(CASES, &v, "a case count (up to 4294967295)"))
                .transpose()?,
            thorough,
            expectations: var(EXPECTATIONS)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        })
    }

    /// A default [`Config`] with these settings over it.
    pub fn config(&self) -> Config {
        let mut config = Config::new().thorough(self.thorough);
        if let Some(seed) = self.seed {
            config.seed = seed;
        }
        if let Some(cases) = self.cases {
            config.cases = cases;
        }
        config
    }
}

fn parse<T: FromStr>(name: &str, value: &str, what: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{name}={value:?} is not {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<EnvSettings, String> {
        EnvSettings::read_from(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn unset_and_empty_variables_leave_the_defaults() {
        assert_eq!(read(&[]), Ok(EnvSettings::default()));
        assert_eq!(
            read(&[(SEED, ""), (EXPECTATIONS, "")]),
            Ok(EnvSettings::default())
        );
        let config = EnvSettings::default().config();
        assert_eq!(config.cases, Config::DEFAULT_CASES);
        assert!(!config.thorough);
    }

    #[test]
    fn set_variables_are_applied() {
        let settings = read(&[
            (SEED, "7"),
            (CASES, "3"),
            (THOROUGH, "1"),
            (EXPECTATIONS, "g.toml"),
        ])
        .expect("valid");
        assert_eq!(settings.expectations, Some(PathBuf::from("g.toml")));
        let config = settings.config();
        assert_eq!((config.seed, config.cases, config.thorough), (7, 3, true));
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        for (name, value) in [
            (SEED, "abc"),
            (CASES, "-1"),
            (CASES, "9999999999"),
            (THOROUGH, "maybe"),
        ] {
            let e = read(&[(name, value)]).expect_err(value);
            assert!(e.contains(name) && e.contains(value), "{e}");
        }
    }
}
