//! A named check ([`Case`]) and what it needs of the plugin ([`Need`]); how it ends is
//! in `failure.rs`.

use std::fmt;

use identity_cache_persistence::Capabilities;

use crate::{
    ctx::Ctx,
    failure::{Failure, Stop},
};

/// One check of one rule, named `area::case`.
#[derive(Clone, Copy)]
pub struct Case {
    /// `area::case`, e.g. `"contract::absent_is_none"`; unique, stable, filterable.
    pub name: &'static str,
    /// The rule the case checks, one line, as a failure reports it.
    pub rule: &'static str,
    /// What the plugin or the environment must offer for the case to apply.
    pub needs: &'static [Need],
    /// The check: `Ok(())` when the rule holds, otherwise what broke or why the case
    /// does not apply.
    pub run: fn(&Ctx) -> Result<(), Stop>,
}

impl Case {
    /// The area, the part of the name before `::`.
    pub fn area(&self) -> &'static str {
        self.name.split("::").next().unwrap_or(self.name)
    }

    /// A failure of this case's rule: `expected` vs `actual`.
    pub fn fail(&self, expected: impl Into<String>, actual: impl Into<String>) -> Failure {
        Failure::new(self.rule, expected, actual)
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("rule", &self.rule)
            .field("needs", &self.needs)
            .finish_non_exhaustive()
    }
}

/// A condition for a case to apply. Unmet needs make the case *skipped with a reason*;
/// they never make it pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The plugin declares [`Capabilities::exclusive_lock`]: its lock excludes every
    /// other holder of the slot. A plugin whose slot is not shared across processes (an
    /// in-memory store) declares it when its lock excludes every handle and thread, since
    /// no other process can hold that slot.
    Lock,
    /// The plugin does not declare a lock: the case checks that `lock` is refused.
    NoLock,
    /// The plugin declares [`Capabilities::change_detection`].
    ChangeDetection,
    /// The plugin does not declare change detection: `version` must be refused.
    NoChangeDetection,
    /// The plugin declares [`Capabilities::encrypts_at_rest`].
    EncryptsAtRest,
    /// The plugin declares a [`Capabilities::max_size`].
    MaxSize,
    /// The plugin accepts blobs of at least this many bytes (no `max_size` below it).
    Accepts(usize),
    /// The slot is shared across processes and a [`WorkerLauncher`](crate::WorkerLauncher)
    /// is present, so the case can start worker processes.
    Workers,
    /// Unix file modes are meaningful (the case inspects them).
    Unix,
}

impl Need {
    /// `None` when the need is met; otherwise why the case does not apply.
    pub fn unmet(self, caps: &Capabilities, has_launcher: bool) -> Option<String> {
        let reason = |met: bool, why: &str| (!met).then(|| why.to_string());
        match self {
            Need::Lock => reason(caps.exclusive_lock, "plugin declares no cross-process lock"),
            Need::NoLock => reason(
                !caps.exclusive_lock,
                "plugin declares a lock (its refusal is not applicable)",
            ),
            Need::ChangeDetection => {
                reason(caps.change_detection, "plugin declares no change detection")
            }
            Need::NoChangeDetection => reason(
                !caps.change_detection,
                "plugin declares change detection (its refusal is not applicable)",
            ),
            Need::EncryptsAtRest => reason(
                caps.encrypts_at_rest,
                "plugin declares no encryption at rest",
            ),
            Need::MaxSize => reason(caps.max_size.is_some(), "plugin declares no max_size"),
            Need::Accepts(len) => match caps.max_size {
                Some(max) if max < len => Some(format!(
                    "plugin declares max_size {max} bytes, below the {len} bytes this case saves"
                )),
                _ => None,
            },
            Need::Workers => {
                if !caps.shared_across_processes {
                    Some("plugin declares its slot is not shared across processes".into())
                } else if !has_launcher {
                    Some(
                        "no worker launcher: cannot start a second process serving this plugin"
                            .into(),
                    )
                } else {
                    None
                }
            }
            Need::Unix => reason(cfg!(unix), "file modes are checked on Unix only"),
        }
    }
}
