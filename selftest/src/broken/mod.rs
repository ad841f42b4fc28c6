//! Deliberately broken plugins: the proof that every check of the conformance suite can
//! fail.
//!
//! Each plugin here breaks exactly one rule of the
//! [`CachePersistence`](identity_cache_persistence::CachePersistence) contract and is right
//! otherwise, including the capabilities it declares, so that the case which checks that
//! rule runs and must catch it. [`catalogue`] lists them all, each with the rule it breaks
//! and the conformance case that must fail for it; the catalogue test of this crate
//! (`cargo test -p conformance-selftest --test catalogue`) runs the suite against every
//! one, asserts that the named case fails, and prints the table.
//!
//! Two families, each a correct plugin with one behaviour changed per flaw:
//!
//! - [`memory`]: the in-memory plugin ([`InMemoryPersistence`](identity_cache_mocks::InMemoryPersistence)),
//!   for everything one process can show: byte-exact round trips, deletes, names, change
//!   tokens, the lock between handles and threads, secrets in Debug, logs and errors, size
//!   limits, corrupt data, storage faults.
//! - [`file`](mod@file): a small file plugin, for what needs files and other processes: torn and
//!   killed saves, locks of dead holders, process-local locks and tokens, file modes.
//!
//! Each family has a control ([`memory::Flaw::None`], [`file::Flaw::None`]) that changes
//! nothing and must pass every case that applies: a broken plugin fails *because of* its
//! flaw, not because of its base. Get them with [`controls`].
//!
//! Out-of-process broken plugins (Python, over the JSON-lines protocol) live in
//! `selftest/broken-plugins/`.
//!
//! Nothing outside a test of the suite itself should use these plugins.
//!
//! ```
//! use conformance_selftest::broken;
//!
//! let all = broken::catalogue();
//! assert!(all.len() >= 15);
//! let no_op = broken::find("memory_no_op_lock").expect("in the catalogue");
//! assert_eq!(no_op.expected_case, "lock::excludes_other_handle");
//! ```

pub mod file;
pub mod memory;
pub mod python;
pub mod served;

use std::{fmt, sync::Arc};

use conformance::PluginFactory;

/// The catalogue entry of a flaw: its name, the rule it breaks and the case that catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// A unique snake_case name, e.g. `"memory_no_op_lock"`.
    pub name: &'static str,
    /// The one rule of the contract it breaks (and, in parentheses, how).
    pub rule: &'static str,
    /// The conformance case that must fail for it (`area::case`).
    pub expected_case: &'static str,
    /// Other cases that must fail for it too (the same rule seen from another side).
    pub also: &'static [&'static str],
}

/// One broken plugin of the catalogue, with a factory to run the suite against it.
#[derive(Clone)]
pub struct BrokenPlugin {
    /// A unique snake_case name, e.g. `"memory_no_op_lock"`; also the factory's label.
    pub name: &'static str,
    /// The one rule of the contract it breaks.
    pub rule: &'static str,
    /// The conformance case that must fail for it.
    pub expected_case: &'static str,
    /// Other cases that must fail for it too.
    pub also: &'static [&'static str],
    /// The cases that catch it start worker processes, which must serve this same plugin
    /// (see [`find`]: a worker looks its plugin up by name).
    pub multi_process: bool,
    /// Everything it stores is under the namespace directory (the file family), so served
    /// over the protocol it may declare `storage_under_dir` and get the suite's fault and
    /// corruption hooks from outside.
    pub storage_under_dir: bool,
    /// Makes handles of the broken plugin (with the fault and corruption hooks its family
    /// supports).
    pub factory: Arc<dyn PluginFactory>,
}

impl BrokenPlugin {
    /// Every case that must fail for it: the expected case first, then [`also`](Self::also).
    pub fn must_fail(&self) -> Vec<&'static str> {
        std::iter::once(self.expected_case)
            .chain(self.also.iter().copied())
            .collect()
    }

    /// A plugin of the memory family: one process, storage in memory.
    fn in_memory(flaw: memory::Flaw) -> Self {
        BrokenPlugin::from_spec(
            flaw.spec(),
            false,
            false,
            Arc::new(memory::MemoryFactory::new(flaw)),
        )
    }

    /// A plugin of the file family: storage under the namespace directory.
    fn in_files(flaw: file::Flaw, multi_process: bool) -> Self {
        BrokenPlugin::from_spec(
            flaw.spec(),
            multi_process,
            true,
            Arc::new(file::FileFlawFactory::new(flaw)),
        )
    }

    fn from_spec(
        spec: Spec,
        multi_process: bool,
        storage_under_dir: bool,
        factory: Arc<dyn PluginFactory>,
    ) -> Self {
        BrokenPlugin {
            name: spec.name,
            rule: spec.rule,
            expected_case: spec.expected_case,
            also: spec.also,
            multi_process,
            storage_under_dir,
            factory,
        }
    }
}

impl fmt::Debug for BrokenPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokenPlugin")
            .field("name", &self.name)
            .field("rule", &self.rule)
            .field("expected_case", &self.expected_case)
            .field("also", &self.also)
            .field("multi_process", &self.multi_process)
            .field("storage_under_dir", &self.storage_under_dir)
            .finish_non_exhaustive()
    }
}

/// Every broken plugin, each with a factory of its own (a fresh store for the in-memory
/// ones). The file family is included on Unix only.
pub fn catalogue() -> Vec<BrokenPlugin> {
    let memory = memory::Flaw::ALL
        .iter()
        .map(|&flaw| BrokenPlugin::in_memory(flaw));
    // The file family locks with flock(2) and checks Unix modes: Unix only.
    let file_flaws: &[file::Flaw] = if cfg!(unix) { file::Flaw::ALL } else { &[] };
    let file = file_flaws
        .iter()
        .map(|&flaw| BrokenPlugin::in_files(flaw, flaw.multi_process()));
    memory.chain(file).collect()
}

/// The broken plugin called `name` (or a control, see [`controls`]), with a new factory.
pub fn find(name: &str) -> Option<BrokenPlugin> {
    catalogue()
        .into_iter()
        .chain(controls())
        .find(|p| p.name == name)
}

/// The families' controls: the same plugins with nothing changed, which must pass every
/// case that applies. Their `expected_case` is empty. The file family's is Unix only.
pub fn controls() -> Vec<BrokenPlugin> {
    let mut controls = vec![BrokenPlugin::in_memory(memory::Flaw::None)];
    if cfg!(unix) {
        controls.push(BrokenPlugin::in_files(file::Flaw::None, true));
    }
    controls
}
