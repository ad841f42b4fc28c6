//! The fallible operations of the plugin trait, named so faults and gates can target them.

use std::fmt;

/// One fallible operation of [`CachePersistence`](identity_cache_persistence::CachePersistence).
///
/// [`describe`](identity_cache_persistence::CachePersistence::describe) is not listed: its
/// contract says it never fails and is cheap, so no double delays, fails or gates it.
///
/// Non-exhaustive because the trait may grow operations (a conditional save, say), and
/// each will be faultable and gated too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// [`CachePersistence::load`](identity_cache_persistence::CachePersistence::load).
    Load,
    /// [`CachePersistence::save`](identity_cache_persistence::CachePersistence::save).
    Save,
    /// [`CachePersistence::delete`](identity_cache_persistence::CachePersistence::delete).
    Delete,
    /// [`CachePersistence::version`](identity_cache_persistence::CachePersistence::version).
    Version,
    /// [`CachePersistence::lock`](identity_cache_persistence::CachePersistence::lock).
    Lock,
}

impl Operation {
    /// Every operation, in trait order.
    pub const ALL: [Operation; 5] = [
        Operation::Load,
        Operation::Save,
        Operation::Delete,
        Operation::Version,
        Operation::Lock,
    ];

    /// The method name, e.g. `"save"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Load => "load",
            Operation::Save => "save",
            Operation::Delete => "delete",
            Operation::Version => "version",
            Operation::Lock => "lock",
        }
    }

    /// A dense index for per-operation tables.
    pub(crate) fn index(self) -> usize {
        match self {
            Operation::Load => 0,
            Operation::Save => 1,
            Operation::Delete => 2,
            Operation::Version => 3,
            Operation::Lock => 4,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
