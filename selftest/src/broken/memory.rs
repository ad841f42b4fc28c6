//! The in-process family: [`InMemoryPersistence`], the correct plugin, with one behaviour
//! changed per [`Flaw`].
//!
//! Every plugin of this family keeps its blobs in an [`InMemoryStore`] of its factory and
//! delegates to a correct [`InMemoryPersistence`] handle; a flaw changes one method (or one
//! declared capability) and nothing else. [`Flaw::None`] changes nothing: it is the control
//! that must pass every case, so a case that fails for a flaw fails because of that flaw.
//!
//! What the family declares: change detection and a lock (`exclusive_lock: true`), and
//! `shared_across_processes: false`. The slot lives in one process's memory, so no other
//! process can share it, and a lock that excludes every handle and thread of the one process
//! that can reach the slot excludes everyone there is; the multi-process cases are skipped
//! because the slot is not shared. The correct [`InMemoryPersistence`] declares the same.
//!
//! The rule each flaw breaks and the conformance case that must catch it are in
//! [`Flaw::spec`], next to the flaw.

use std::{
    collections::HashMap,
    fmt,
    path::PathBuf,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime},
};

use conformance::{Fault, Namespace, PluginFactory};
use identity_cache_persistence::{
    CachePersistence, Capabilities, ChangeToken, Description, Error, ErrorKind, HeldLock,
    LockGuard, Result,
};

use super::Spec;
use identity_cache_mocks::{InMemoryPersistence, InMemoryStore};

use crate::sync::lock;

/// The size limit declared by the flaws about `max_size`.
pub const LIMIT: usize = 64 * 1024;

/// One changed behaviour of the in-memory plugin. The rule it breaks and the case that
/// catches it: [`Flaw::spec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flaw {
    /// Nothing changed: the control, which passes every case that applies.
    None,
    // --- contract ---
    /// `load` of an absent slot answers `Some(empty)`.
    AbsentAsEmpty,
    /// `load` of a saved empty blob answers `None`.
    EmptyAsAbsent,
    /// `save` stores the blob up to its first NUL byte, as a C string would.
    StopsAtNul,
    /// `save` decodes the blob as UTF-8 text (invalid sequences replaced) and stores the
    /// text re-encoded, as a plugin that keeps the cache in a string might.
    LossyUtf8,
    /// `save` keeps at most 1,000,000 bytes: a fixed buffer of one decimal megabyte.
    DropsTailAbove1Mb,
    /// `save` keeps at most 4 MiB (a message size limit), without declaring a `max_size`.
    DropsTailAbove4Mib,
    /// `save` drops the last byte of blobs over 100 KiB: an off-by-one in a chunked copy.
    DropsLastByteAbove100Kib,
    /// `save` writes over the old blob and keeps its tail when the new blob is shorter.
    KeepsOldTail,
    /// `delete` removes the blob but answers `false`.
    DeleteReportsFalse,
    /// `delete` answers `true` also when nothing was stored.
    DeleteAlwaysTrue,
    /// `delete` stores an empty blob instead of removing it.
    DeleteStoresEmpty,
    /// `delete` leaves a tombstone that later saves do not clear: they are dropped.
    TombstoneDropsSaves,
    /// Every name maps to one slot.
    OneSlotForAllNames,
    /// Each handle caches the first blob it loads or saves and answers loads from it.
    StaleCache,
    /// The blob lives only as long as some handle on its slot: the last drop removes it.
    DiesWithLastHandle,
    // --- change ---
    /// `version` of an absent slot answers a token.
    TokenForAbsent,
    /// The token is the same for every stored blob (an identity that writes in place keep).
    TokenNeverMoves,
    /// Each handle caches its token; only its own saves and deletes refresh it.
    TokenCachedPerHandle,
    /// The token is the blob's size and the save time in whole seconds.
    TokenSizeAndSeconds,
    /// The token is the blob's size alone.
    TokenIsLength,
    /// The token is a hash of the blob's content.
    TokenIsContentHash,
    /// Every `version` call answers a new token.
    TokenMovesOnRead,
    /// The token counts saves since the last delete, so it restarts after a delete.
    TokenRestartsAfterDelete,
    /// Declares no change detection, yet `version` answers tokens.
    VersionWithoutDeclaring,
    // --- lock ---
    /// `lock` always succeeds at once: a no-op.
    NoOpLock,
    /// `lock` checks that the lock is free, then sets it: two steps, not one atomic one.
    NonAtomicTestAndSet,
    /// The handle that holds the lock gets it again.
    Reentrant,
    /// A request for a held lock fails with `LockTimeout` at once instead of waiting.
    TimeoutAtOnce,
    /// A request for a held lock retries on a fixed 3 s back-off and looks at its deadline
    /// only after sleeping, so it overshoots short waits by seconds.
    TimeoutOvershoots,
    /// A zero wait never tries: `lock(0)` answers `LockTimeout` even for a free lock.
    ZeroWaitNeverTries,
    /// Releasing the guard does not free the lock.
    NeverReleased,
    /// `LockGuard::release` frees the lock but answers an error.
    ReleaseReportsError,
    /// A request for a held lock sleeps its whole wait and gives up without retrying.
    NoWakeup,
    /// A request computes its deadline as `Instant::now() + wait`, which panics for a
    /// wait too long to add to the clock (`Duration::MAX`, "no deadline").
    DeadlineOverflows,
    /// Declares no lock, yet `lock` grants one.
    LockWithoutDeclaring,
    /// While a handle holds the lock, its loads answer the blob it saved last (a cache
    /// trusted under the lock, though it was filled before the lock was taken).
    CacheTrustedUnderLock,
    // --- concurrency ---
    /// `save` stores the first half of the blob, lets others in, then stores the whole.
    TornSave,
    // --- security ---
    /// Declares encryption at rest, and leaves a plaintext copy under the namespace dir.
    PlaintextBeside,
    /// `Debug` shows the stored blob.
    DebugLeaks,
    /// `Debug` shows the stored blob base64-encoded, as a plugin that prints its encoded
    /// storage form might.
    DebugLeaksBase64,
    /// `save` logs the blob (a `tracing` event).
    LogsBlob,
    /// The lock-timeout error quotes the stored blob.
    ErrorLeaks,
    // --- input ---
    /// Declares a `max_size` and stores larger blobs anyway.
    LimitNotEnforced,
    /// `save` removes the old blob before it checks the size, so a refused blob loses it.
    OversizeClearsFirst,
    /// Refuses blobs of exactly `max_size` bytes (`>=` where `>` was meant).
    LimitOffByOne,
    /// `load` of damaged data answers `None`, as if nothing were stored.
    CorruptAsAbsent,
    /// `load` of damaged data replaces it with an empty blob and answers that.
    CorruptReplacedByEmpty,
    /// `load` of damaged data answers `CorruptData` and removes the data.
    CorruptRemoved,
    /// The factory accepts every name, `..` and `/` included.
    NamesUnchecked,
    // --- faults ---
    /// `save` answers `Ok` when the storage refused it: errors swallowed.
    SwallowsSaveErrors,
    /// Every storage failure of `save` is reported as `Io`, whatever it was.
    UntypedErrors,
    /// A save that fails on a storage fault first removed the stored blob.
    FailedSaveLosesBlob,
    /// A save that fails on a storage fault first emptied the stored blob (truncated it).
    FailedSaveEmptiesBlob,
    /// `load` answers `None` when the storage cannot be reached.
    LoadFaultAsAbsent,
}

impl Flaw {
    /// Every flaw but [`Flaw::None`], in catalogue order.
    pub const ALL: &'static [Flaw] = &[
        Flaw::AbsentAsEmpty,
        Flaw::EmptyAsAbsent,
        Flaw::StopsAtNul,
        Flaw::LossyUtf8,
        Flaw::DropsTailAbove1Mb,
        Flaw::DropsTailAbove4Mib,
        Flaw::DropsLastByteAbove100Kib,
        Flaw::KeepsOldTail,
        Flaw::DeleteReportsFalse,
        Flaw::DeleteAlwaysTrue,
        Flaw::DeleteStoresEmpty,
        Flaw::TombstoneDropsSaves,
        Flaw::OneSlotForAllNames,
        Flaw::StaleCache,
        Flaw::DiesWithLastHandle,
        Flaw::TokenForAbsent,
        Flaw::TokenNeverMoves,
        Flaw::TokenCachedPerHandle,
        Flaw::TokenSizeAndSeconds,
        Flaw::TokenIsLength,
        Flaw::TokenIsContentHash,
        Flaw::TokenMovesOnRead,
        Flaw::TokenRestartsAfterDelete,
        Flaw::VersionWithoutDeclaring,
        Flaw::NoOpLock,
        Flaw::NonAtomicTestAndSet,
        Flaw::Reentrant,
        Flaw::TimeoutAtOnce,
        Flaw::TimeoutOvershoots,
        Flaw::ZeroWaitNeverTries,
        Flaw::NeverReleased,
        Flaw::ReleaseReportsError,
        Flaw::NoWakeup,
        Flaw::DeadlineOverflows,
        Flaw::LockWithoutDeclaring,
        Flaw::CacheTrustedUnderLock,
        Flaw::TornSave,
        Flaw::PlaintextBeside,
        Flaw::DebugLeaks,
        Flaw::DebugLeaksBase64,
        Flaw::LogsBlob,
        Flaw::ErrorLeaks,
        Flaw::LimitNotEnforced,
        Flaw::OversizeClearsFirst,
        Flaw::LimitOffByOne,
        Flaw::CorruptAsAbsent,
        Flaw::CorruptReplacedByEmpty,
        Flaw::CorruptRemoved,
        Flaw::NamesUnchecked,
        Flaw::SwallowsSaveErrors,
        Flaw::UntypedErrors,
        Flaw::FailedSaveLosesBlob,
        Flaw::FailedSaveEmptiesBlob,
        Flaw::LoadFaultAsAbsent,
    ];

    /// The catalogue entry: name, the one rule broken, the case that must catch it, and
    /// other cases that must fail too.
    pub fn spec(self) -> Spec {
        let s = |name, rule, expected_case, also| Spec {
            name,
            rule,
            expected_case,
            also,
        };
        match self {
            Flaw::None => s(
                "memory_control",
                "none: the in-memory family's control, which breaks nothing",
                "",
                &[],
            ),
            Flaw::AbsentAsEmpty => s(
                "memory_absent_as_empty",
                "load of an absent slot is Ok(None), not an empty blob",
                "contract::absent_is_none",
                &[],
            ),
            Flaw::EmptyAsAbsent => s(
                "memory_empty_as_absent",
                "a saved empty blob loads as Some(empty), not None",
                "contract::empty_blob_is_not_absent",
                &[],
            ),
            Flaw::StopsAtNul => s(
                "memory_stops_at_nul",
                "the blob is opaque bytes: NUL bytes and what follows them are kept",
                "contract::binary_round_trip",
                &[],
            ),
            Flaw::LossyUtf8 => s(
                "memory_lossy_utf8",
                "the blob is opaque bytes, never decoded as text and re-encoded",
                "contract::non_utf8_round_trip",
                &[],
            ),
            Flaw::DropsTailAbove1Mb => s(
                "memory_drops_tail_above_1mb",
                "a blob is stored whole, whatever its size (trailing bytes dropped above 1,000,000 bytes)",
                "contract::round_trip_1mib",
                &["contract::round_trip_8mib"],
            ),
            Flaw::DropsTailAbove4Mib => s(
                "memory_drops_tail_above_4mib",
                "a plugin without a declared max_size stores blobs of any size whole (trailing bytes dropped above 4 MiB)",
                "contract::round_trip_8mib",
                &[],
            ),
            Flaw::DropsLastByteAbove100Kib => s(
                "memory_drops_last_byte_above_100kib",
                "a blob is stored whole, whatever its size (the last byte dropped above 100 KiB)",
                "contract::round_trip_1mib",
                &["contract::round_trip_8mib"],
            ),
            Flaw::KeepsOldTail => s(
                "memory_keeps_old_tail",
                "a save replaces the whole blob: no tail of a longer earlier blob survives",
                "contract::save_replaces_whole_blob",
                &[],
            ),
            Flaw::DeleteReportsFalse => s(
                "memory_delete_reports_false",
                "delete answers true when it removed a blob",
                "contract::delete_true_then_false",
                &[],
            ),
            Flaw::DeleteAlwaysTrue => s(
                "memory_delete_always_true",
                "delete answers false when nothing was stored",
                "contract::delete_absent_is_false",
                &[
                    "contract::delete_true_then_false",
                    "model::sequences_match_model",
                ],
            ),
            Flaw::DeleteStoresEmpty => s(
                "memory_delete_stores_empty",
                "after delete, load answers None (absent), not an empty blob",
                "contract::load_after_delete_is_none",
                &[],
            ),
            Flaw::TombstoneDropsSaves => s(
                "memory_tombstone_drops_saves",
                "a save after a delete stores the new blob",
                "contract::save_after_delete",
                &[],
            ),
            Flaw::OneSlotForAllNames => s(
                "memory_names_not_isolated",
                "slots of different names are isolated (here every name maps to one slot)",
                "contract::isolation_by_name",
                &[],
            ),
            Flaw::StaleCache => s(
                "memory_stale_cache",
                "load returns the blob saved last by any handle, not a stale per-handle copy",
                "contract::handles_share_slot",
                &[],
            ),
            Flaw::DiesWithLastHandle => s(
                "memory_dies_with_last_handle",
                "a saved blob outlives the handles that saved it",
                "contract::saved_blob_outlives_handle",
                &[],
            ),
            Flaw::TokenForAbsent => s(
                "memory_token_for_absent",
                "version of an absent slot is Ok(None)",
                "change::absent_is_none",
                &[],
            ),
            Flaw::TokenNeverMoves => s(
                "memory_token_never_moves",
                "the change token moves on every save",
                "change::moves_on_own_save",
                &["change::moves_on_same_size_saves"],
            ),
            Flaw::TokenCachedPerHandle => s(
                "memory_token_cached_per_handle",
                "the change token moves when another handle saves",
                "change::moves_on_other_handle_save",
                &[],
            ),
            Flaw::TokenSizeAndSeconds => s(
                "memory_token_size_and_seconds",
                "the change token moves on a save of the same size within the same second",
                "change::moves_on_same_size_saves",
                &[],
            ),
            Flaw::TokenIsLength => s(
                "memory_token_is_length",
                "the change token moves on a save of the same size (here the token is the size)",
                "change::moves_on_same_size_saves",
                &[],
            ),
            Flaw::TokenIsContentHash => s(
                "memory_token_is_content_hash",
                "the change token moves when the same bytes are saved again",
                "change::moves_on_identical_resave",
                &[],
            ),
            Flaw::TokenMovesOnRead => s(
                "memory_token_moves_on_read",
                "without saves or deletes, the change token stays equal",
                "change::stable_without_saves",
                &[],
            ),
            Flaw::TokenRestartsAfterDelete => s(
                "memory_token_restarts_after_delete",
                "a token after a delete and save differs from every token before it",
                "change::moves_on_delete",
                &[],
            ),
            Flaw::VersionWithoutDeclaring => s(
                "memory_version_without_declaring",
                "a plugin that declares no change detection refuses version with NotSupported",
                "change::refused_when_not_declared",
                &[],
            ),
            Flaw::NoOpLock => s(
                "memory_no_op_lock",
                "while one handle holds the lock, no other handle gets it (the lock is a no-op)",
                "lock::excludes_other_handle",
                &[
                    "lock::excludes_across_threads",
                    "concurrency::no_lost_updates_threads",
                ],
            ),
            Flaw::NonAtomicTestAndSet => s(
                "memory_non_atomic_test_and_set",
                "taking the lock is atomic: two threads never both see it free and take it",
                "lock::excludes_across_threads",
                &[],
            ),
            Flaw::Reentrant => s(
                "memory_reentrant_lock",
                "the lock is not re-entrant",
                "lock::not_reentrant",
                &[],
            ),
            Flaw::TimeoutAtOnce => s(
                "memory_timeout_at_once",
                "a request for a held lock waits for its whole wait before LockTimeout",
                "lock::waits_before_timeout",
                &[],
            ),
            Flaw::TimeoutOvershoots => s(
                "memory_timeout_overshoots",
                "a request for a held lock gives up soon after its wait runs out",
                "lock::timeout_is_bounded",
                &[],
            ),
            Flaw::ZeroWaitNeverTries => s(
                "memory_zero_wait_never_tries",
                "a lock request with a zero wait tries once: a free lock is granted",
                "lock::zero_wait_tries_once",
                &[],
            ),
            Flaw::NeverReleased => s(
                "memory_lock_never_released",
                "dropping the guard releases the lock",
                "lock::release_on_drop",
                &["lock::release_explicit"],
            ),
            Flaw::ReleaseReportsError => s(
                "memory_release_reports_error",
                "LockGuard::release answers Ok when it released the lock",
                "lock::release_explicit",
                &[],
            ),
            Flaw::NoWakeup => s(
                "memory_lock_no_wakeup",
                "a waiter enters once the holder releases, before its wait runs out",
                "lock::waiter_enters_after_release",
                &[],
            ),
            Flaw::DeadlineOverflows => s(
                "memory_lock_deadline_overflows",
                "a wait too long to add to the clock has no deadline",
                "lock::unbounded_wait_enters_after_release",
                &[],
            ),
            Flaw::LockWithoutDeclaring => s(
                "memory_lock_without_declaring",
                "a plugin that declares no lock refuses lock with NotSupported",
                "lock::refused_when_not_declared",
                &[],
            ),
            Flaw::CacheTrustedUnderLock => s(
                "memory_cache_trusted_under_lock",
                "a load under the lock returns what is stored, so locked read-modify-writes lose no update",
                "concurrency::no_lost_updates_threads",
                &["model::sequences_match_model"],
            ),
            Flaw::TornSave => s(
                "memory_torn_save",
                "a concurrent load sees the old or the new blob, never part of one",
                "concurrency::linearizable_register",
                &["concurrency::no_torn_reads_threads"],
            ),
            Flaw::PlaintextBeside => s(
                "memory_plaintext_beside_encrypted",
                "a plugin that declares encryption at rest leaves no plaintext of the blob under its directory",
                "security::no_plaintext_at_rest",
                &[],
            ),
            Flaw::DebugLeaks => s(
                "memory_secret_in_debug",
                "Debug output never contains the blob",
                "security::blob_not_in_debug",
                &[],
            ),
            Flaw::DebugLeaksBase64 => s(
                "memory_secret_in_debug_base64",
                "Debug output never contains the blob, base64-encoded either",
                "security::blob_not_in_debug",
                &[],
            ),
            Flaw::LogsBlob => s(
                "memory_secret_in_logs",
                "nothing the plugin logs contains the blob",
                "security::blob_not_in_logs",
                &[],
            ),
            Flaw::ErrorLeaks => s(
                "memory_secret_in_errors",
                "no error message contains the blob",
                "security::blob_not_in_errors",
                &[],
            ),
            Flaw::LimitNotEnforced => s(
                "memory_limit_not_enforced",
                "a blob over the declared max_size is refused with TooLarge",
                "input::oversized_is_too_large",
                &[],
            ),
            Flaw::OversizeClearsFirst => s(
                "memory_oversize_clears_first",
                "a refused oversized save leaves the stored blob as it was",
                "input::oversized_keeps_blob",
                &[],
            ),
            Flaw::LimitOffByOne => s(
                "memory_limit_off_by_one",
                "a blob of exactly the declared max_size is accepted",
                "input::max_size_accepted",
                &[],
            ),
            Flaw::CorruptAsAbsent => s(
                "memory_corrupt_as_absent",
                "load of corrupt stored data fails with CorruptData (not silently None)",
                "input::corrupt_is_corrupt_data",
                &["input::corrupt_left_in_place"],
            ),
            Flaw::CorruptReplacedByEmpty => s(
                "memory_corrupt_replaced_by_empty",
                "load of corrupt stored data fails with CorruptData and leaves it (not silently replaced by an empty store)",
                "input::corrupt_is_corrupt_data",
                &["input::corrupt_left_in_place"],
            ),
            Flaw::CorruptRemoved => s(
                "memory_corrupt_removed",
                "corrupt stored data is left in place by load",
                "input::corrupt_left_in_place",
                &[],
            ),
            Flaw::NamesUnchecked => s(
                "memory_names_unchecked",
                "invalid cache names are refused with InvalidName",
                "input::invalid_names_refused",
                &[],
            ),
            Flaw::SwallowsSaveErrors => s(
                "memory_swallows_save_errors",
                "a save the storage refused answers an error, not Ok (errors swallowed)",
                "faults::storage_unavailable_kind",
                &["faults::access_denied_kind", "faults::disk_full_kind"],
            ),
            Flaw::UntypedErrors => s(
                "memory_untyped_errors",
                "a storage failure answers the error kind of its cause (StorageFull for a full disk), not a generic one",
                "faults::disk_full_kind",
                &[
                    "faults::access_denied_kind",
                    "faults::storage_unavailable_kind",
                ],
            ),
            Flaw::FailedSaveLosesBlob => s(
                "memory_failed_save_loses_blob",
                "a save that fails on a storage fault leaves the stored blob as it was",
                "faults::disk_full_keeps_blob",
                &[
                    "faults::storage_unavailable_keeps_blob",
                    "faults::access_denied_keeps_blob",
                ],
            ),
            Flaw::FailedSaveEmptiesBlob => s(
                "memory_failed_save_empties_blob",
                "a save that fails on a storage fault leaves the stored blob as it was (not emptied)",
                "faults::disk_full_keeps_blob",
                &[
                    "faults::storage_unavailable_keeps_blob",
                    "faults::access_denied_keeps_blob",
                ],
            ),
            Flaw::LoadFaultAsAbsent => s(
                "memory_load_fault_as_absent",
                "a load the storage refused answers an error of its kind, not None",
                "faults::storage_unavailable_load_kind",
                &[],
            ),
        }
    }

    fn capabilities(self) -> Capabilities {
        let caps = Capabilities::full().shared_across_processes(false);
        match self {
            Flaw::PlaintextBeside => caps.encrypts_at_rest(true),
            Flaw::LockWithoutDeclaring => caps.exclusive_lock(false),
            Flaw::VersionWithoutDeclaring => caps.change_detection(false),
            Flaw::LimitNotEnforced | Flaw::OversizeClearsFirst | Flaw::LimitOffByOne => {
                caps.max_size(Some(LIMIT))
            }
            _ => caps,
        }
    }

    /// True for the flaws that keep the injected faults themselves (see [`Shared::faults`]),
    /// so that they can damage the blob while the storage refuses service.
    fn keeps_own_faults(self) -> bool {
        matches!(
            self,
            Flaw::FailedSaveLosesBlob | Flaw::FailedSaveEmptiesBlob
        )
    }

    /// True for the flaws whose `max_size` the correct inner handle enforces.
    fn inner_limit(self) -> Option<usize> {
        match self {
            Flaw::OversizeClearsFirst => Some(LIMIT),
            _ => None,
        }
    }
}

/// What the handles of one factory share besides the store: per-slot bookkeeping some
/// flaws need, and the lock state of the flaws that bring their own lock.
#[derive(Default)]
struct Shared {
    slots: Mutex<HashMap<String, SlotMeta>>,
    locks: Mutex<HashMap<String, Arc<OwnLock>>>,
    /// Faults injected by the factory, for the flaws that keep them themselves
    /// ([`Flaw::keeps_own_faults`]).
    faults: Mutex<HashMap<String, ErrorKind>>,
}

#[derive(Default)]
struct SlotMeta {
    /// Seconds since the epoch of the last save ([`Flaw::TokenSizeAndSeconds`]).
    saved_at: u64,
    /// Saves since the last delete ([`Flaw::TokenRestartsAfterDelete`]).
    saves_since_delete: u64,
    /// A delete left a tombstone ([`Flaw::TombstoneDropsSaves`]).
    tombstone: bool,
    /// Live handles ([`Flaw::DiesWithLastHandle`]).
    handles: usize,
}

impl Shared {
    fn meta<T>(&self, name: &str, f: impl FnOnce(&mut SlotMeta) -> T) -> T {
        f(lock(&self.slots).entry(name.to_owned()).or_default())
    }

    fn own_lock(&self, name: &str) -> Arc<OwnLock> {
        Arc::clone(lock(&self.locks).entry(name.to_owned()).or_default())
    }
}

/// The lock of the flaws that cannot reuse the correct one.
#[derive(Default)]
struct OwnLock {
    /// The holder's handle id, while held.
    holder: Mutex<Option<u64>>,
    released: Condvar,
}

static HANDLE_IDS: AtomicU64 = AtomicU64::new(1);
static READS: AtomicU64 = AtomicU64::new(1);

/// A held lock: whatever releasing it takes.
struct Held(Box<dyn FnOnce() -> Result<()> + Send>);

impl HeldLock for Held {
    fn release(self: Box<Self>) -> Result<()> {
        (self.0)()
    }
}

/// A handle of the in-memory family with one [`Flaw`].
pub struct BrokenMemory {
    inner: InMemoryPersistence,
    flaw: Flaw,
    name: String,
    dir: PathBuf,
    shared: Arc<Shared>,
    id: u64,
    /// [`Flaw::StaleCache`], [`Flaw::CacheTrustedUnderLock`]: this handle's copy.
    cache: Mutex<Option<Vec<u8>>>,
    /// [`Flaw::TokenCachedPerHandle`]: this handle's token.
    token: Mutex<Option<Option<ChangeToken>>>,
    /// [`Flaw::CacheTrustedUnderLock`]: this handle holds the lock.
    holding: Arc<AtomicBool>,
}

impl BrokenMemory {
    fn timeout(&self, wait: Duration) -> Error {
        Error::new(
            ErrorKind::LockTimeout,
            format!(
                "the lock of memory:{} was still held after {wait:?}",
                self.name
            ),
        )
    }

    /// The flaws with a lock of their own: held while `holder` is set.
    fn own_lock(&self, wait: Duration) -> Result<LockGuard> {
        let own = self.shared.own_lock(&self.name);
        let deadline = Instant::now().checked_add(wait);
        let mut holder = lock(&own.holder);
        loop {
            match *holder {
                None => break,
                Some(id) if id == self.id && self.flaw == Flaw::Reentrant => break,
                Some(_) => {}
            }
            let left = deadline.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Err(self.timeout(wait));
            }
            holder = own
                .released
                .wait_timeout(holder, left)
                .map(|(h, _)| h)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        *holder = Some(self.id);
        drop(holder);
        let never = self.flaw == Flaw::NeverReleased;
        Ok(LockGuard::new(Held(Box::new(move || {
            if !never {
                *lock(&own.holder) = None;
                own.released.notify_all();
            }
            Ok(())
        }))))
    }

    /// [`Flaw::NonAtomicTestAndSet`]: look, then (a moment later) take.
    fn test_then_set(&self, wait: Duration) -> Result<LockGuard> {
        let own = self.shared.own_lock(&self.name);
        let started = Instant::now();
        loop {
            let free = lock(&own.holder).is_none();
            if free {
                // The gap between the test and the set, where another thread also sees
                // the lock free.
                thread::sleep(Duration::from_micros(300));
                *lock(&own.holder) = Some(self.id);
                return Ok(LockGuard::new(Held(Box::new(move || {
                    *lock(&own.holder) = None;
                    Ok(())
                }))));
            }
            if started.elapsed() >= wait {
                return Err(self.timeout(wait));
            }
            thread::sleep(Duration::from_micros(200));
        }
    }

    fn injected(&self) -> Option<ErrorKind> {
        lock(&self.shared.faults).get(&self.name).copied()
    }

    fn fault_error(&self, kind: ErrorKind, operation: &str) -> Error {
        Error::new(
            kind,
            format!(
                "memory:{} refused {operation}: injected storage fault {kind}",
                self.name
            ),
        )
    }
}

impl CachePersistence for BrokenMemory {
    fn describe(&self) -> Description {
        Description::new(
            "memory-broken",
            format!("memory:{}", self.name),
            self.flaw.capabilities(),
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        match self.flaw {
            Flaw::StaleCache => {
                if let Some(cached) = lock(&self.cache).clone() {
                    return Ok(Some(cached));
                }
                let loaded = self.inner.load()?;
                lock(&self.cache).clone_from(&loaded);
                Ok(loaded)
            }
            Flaw::CacheTrustedUnderLock if self.holding.load(Ordering::SeqCst) => {
                match lock(&self.cache).clone() {
                    Some(cached) => Ok(Some(cached)),
                    None => self.inner.load(),
                }
            }
            Flaw::AbsentAsEmpty => Ok(Some(self.inner.load()?.unwrap_or_default())),
            Flaw::EmptyAsAbsent => Ok(self.inner.load()?.filter(|b| !b.is_empty())),
            Flaw::CorruptAsAbsent => match self.inner.load() {
                Err(e) if e.kind() == ErrorKind::CorruptData => Ok(None),
                other => other,
            },
            Flaw::CorruptReplacedByEmpty => match self.inner.load() {
                Err(e) if e.kind() == ErrorKind::CorruptData => {
                    self.inner.save(b"")?;
                    Ok(Some(Vec::new()))
                }
                other => other,
            },
            Flaw::CorruptRemoved => match self.inner.load() {
                Err(e) if e.kind() == ErrorKind::CorruptData => {
                    let _ = self.inner.delete();
                    Err(e)
                }
                other => other,
            },
            Flaw::LoadFaultAsAbsent => match self.inner.load() {
                Err(e) if e.kind() != ErrorKind::CorruptData => Ok(None),
                other => other,
            },
            flaw if flaw.keeps_own_faults() => match self.injected() {
                Some(kind) => Err(self.fault_error(kind, "load")),
                None => self.inner.load(),
            },
            _ => self.inner.load(),
        }
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        let mut data = data;
        let kept;
        match self.flaw {
            Flaw::StopsAtNul => {
                data = data.split(|&b| b == 0).next().unwrap_or_default();
            }
            Flaw::LossyUtf8 => {
                kept = String::from_utf8_lossy(data).into_owned().into_bytes();
                data = &kept;
            }
            Flaw::DropsTailAbove1Mb => data = &data[..data.len().min(1_000_000)],
            Flaw::DropsTailAbove4Mib => data = &data[..data.len().min(4 << 20)],
            Flaw::DropsLastByteAbove100Kib if data.len() > 100 * 1024 => {
                data = &data[..data.len() - 1];
            }
            Flaw::KeepsOldTail => {
                if let Some(old) = self.inner.load()?
                    && old.len() > data.len()
                {
                    let mut merged = data.to_vec();
                    merged.extend_from_slice(&old[data.len()..]);
                    kept = merged;
                    data = &kept;
                }
            }
            Flaw::TombstoneDropsSaves if self.shared.meta(&self.name, |m| m.tombstone) => {
                return Ok(());
            }
            Flaw::LimitOffByOne if data.len() >= LIMIT => {
                return Err(Error::new(
                    ErrorKind::TooLarge,
                    format!(
                        "a blob of {} bytes is too large for memory:{}",
                        data.len(),
                        self.name
                    ),
                ));
            }
            Flaw::OversizeClearsFirst => {
                // "Make room" first, then write: the write is refused, the old blob gone.
                let _ = self.inner.delete();
            }
            Flaw::FailedSaveLosesBlob | Flaw::FailedSaveEmptiesBlob => {
                if let Some(kind) = self.injected() {
                    // Removes (or truncates) the target before writing the new blob, which
                    // then fails.
                    let _ = if self.flaw == Flaw::FailedSaveLosesBlob {
                        self.inner.delete().map(drop)
                    } else {
                        self.inner.save(b"")
                    };
                    return Err(self.fault_error(kind, "save"));
                }
            }
            Flaw::PlaintextBeside => {
                write_private(&self.dir, &format!("{}.plain", self.name), data)?;
            }
            Flaw::LogsBlob => {
                tracing::debug!(blob = %String::from_utf8_lossy(data), "saving the cache");
            }
            Flaw::TornSave => {
                self.inner.save(&data[..data.len() / 2])?;
                thread::sleep(Duration::from_micros(200));
            }
            _ => {}
        }
        let saved = self.inner.save(data);
        let saved = match (self.flaw, saved) {
            (Flaw::SwallowsSaveErrors, Err(_)) => Ok(()),
            (Flaw::UntypedErrors, Err(e)) => Err(Error::new(
                ErrorKind::Io,
                format!("could not save memory:{}: {}", self.name, e.message()),
            )),
            (_, saved) => saved,
        };
        saved?;
        match self.flaw {
            Flaw::StaleCache | Flaw::CacheTrustedUnderLock => {
                *lock(&self.cache) = Some(data.to_vec());
            }
            Flaw::TokenCachedPerHandle => *lock(&self.token) = Some(self.inner.version()?),
            Flaw::TokenSizeAndSeconds => {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                self.shared.meta(&self.name, |m| m.saved_at = now);
            }
            Flaw::TokenRestartsAfterDelete => {
                self.shared.meta(&self.name, |m| m.saves_since_delete += 1);
            }
            _ => {}
        }
        Ok(())
    }

    fn delete(&self) -> Result<bool> {
        let deleted = match self.flaw {
            Flaw::DeleteStoresEmpty => {
                if self.inner.load()?.is_some() {
                    self.inner.save(b"")?;
                    true
                } else {
                    false
                }
            }
            flaw if flaw.keeps_own_faults() => match self.injected() {
                Some(kind) => return Err(self.fault_error(kind, "delete")),
                None => self.inner.delete()?,
            },
            _ => self.inner.delete()?,
        };
        match self.flaw {
            Flaw::DeleteReportsFalse => return Ok(false),
            Flaw::DeleteAlwaysTrue => return Ok(true),
            Flaw::TombstoneDropsSaves if deleted => {
                self.shared.meta(&self.name, |m| m.tombstone = true);
            }
            Flaw::TokenRestartsAfterDelete if deleted => {
                self.shared.meta(&self.name, |m| m.saves_since_delete = 0);
            }
            Flaw::TokenCachedPerHandle => *lock(&self.token) = None,
            _ => {}
        }
        Ok(deleted)
    }

    fn version(&self) -> Result<Option<ChangeToken>> {
        if self.flaw.keeps_own_faults()
            && let Some(kind) = self.injected()
        {
            return Err(self.fault_error(kind, "version"));
        }
        let token = self.inner.version()?;
        Ok(match self.flaw {
            Flaw::TokenForAbsent => Some(token.unwrap_or_else(|| ChangeToken::new("absent"))),
            Flaw::TokenNeverMoves => token.map(|_| ChangeToken::new("stored")),
            Flaw::TokenCachedPerHandle => lock(&self.token).get_or_insert(token).clone(),
            Flaw::TokenSizeAndSeconds => match token {
                None => None,
                Some(_) => {
                    let len = self.inner.load()?.map_or(0, |b| b.len());
                    let secs = self.shared.meta(&self.name, |m| m.saved_at);
                    Some(ChangeToken::new(format!("{len}:{secs}")))
                }
            },
            Flaw::TokenIsLength => self
                .inner
                .load()?
                .map(|b| ChangeToken::new(b.len().to_string())),
            Flaw::TokenIsContentHash => self
                .inner
                .load()?
                .map(|b| ChangeToken::new(format!("{:016x}", fnv64(&b)))),
            Flaw::TokenMovesOnRead => token
                .map(|t| ChangeToken::new(format!("{t}.{}", READS.fetch_add(1, Ordering::SeqCst)))),
            Flaw::TokenRestartsAfterDelete => token.map(|_| {
                ChangeToken::new(
                    self.shared
                        .meta(&self.name, |m| m.saves_since_delete)
                        .to_string(),
                )
            }),
            _ => token,
        })
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        match self.flaw {
            Flaw::NoOpLock => Ok(LockGuard::new(Held(Box::new(|| Ok(()))))),
            Flaw::Reentrant | Flaw::NeverReleased => self.own_lock(wait),
            Flaw::NonAtomicTestAndSet => self.test_then_set(wait),
            Flaw::TimeoutAtOnce => self.inner.lock(Duration::ZERO),
            Flaw::ZeroWaitNeverTries if wait.is_zero() => Err(self.timeout(wait)),
            Flaw::TimeoutOvershoots => {
                let started = Instant::now();
                loop {
                    match self.inner.lock(Duration::ZERO) {
                        Err(e) if e.kind() == ErrorKind::LockTimeout => {}
                        other => return other,
                    }
                    thread::sleep(Duration::from_secs(3));
                    if started.elapsed() >= wait {
                        return Err(self.timeout(wait));
                    }
                }
            }
            Flaw::DeadlineOverflows => {
                let deadline = Instant::now() + wait;
                self.inner
                    .lock(deadline.saturating_duration_since(Instant::now()))
            }
            Flaw::NoWakeup => match self.inner.lock(Duration::ZERO) {
                Err(e) if e.kind() == ErrorKind::LockTimeout => {
                    thread::sleep(wait);
                    Err(self.timeout(wait))
                }
                other => other,
            },
            Flaw::ReleaseReportsError => {
                let guard = self.inner.lock(wait)?;
                let name = self.name.clone();
                Ok(LockGuard::new(Held(Box::new(move || {
                    guard.release()?;
                    Err(Error::new(
                        ErrorKind::Io,
                        format!("could not release the lock of memory:{name}: already released"),
                    ))
                }))))
            }
            Flaw::ErrorLeaks => self.inner.lock(wait).map_err(|e| {
                let stored = self.inner.load().ok().flatten().unwrap_or_default();
                Error::new(
                    e.kind(),
                    format!(
                        "{}; it protects {}",
                        e.message(),
                        String::from_utf8_lossy(&stored)
                    ),
                )
            }),
            Flaw::CacheTrustedUnderLock => {
                let guard = self.inner.lock(wait)?;
                self.holding.store(true, Ordering::SeqCst);
                let holding = Arc::clone(&self.holding);
                Ok(LockGuard::new(Held(Box::new(move || {
                    holding.store(false, Ordering::SeqCst);
                    guard.release()
                }))))
            }
            _ => self.inner.lock(wait),
        }
    }
}

impl Drop for BrokenMemory {
    fn drop(&mut self) {
        if self.flaw == Flaw::DiesWithLastHandle {
            let last = self.shared.meta(&self.name, |m| {
                m.handles -= 1;
                m.handles == 0
            });
            if last {
                let _ = self.inner.delete();
            }
        }
    }
}

impl fmt::Debug for BrokenMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("BrokenMemory");
        d.field("name", &self.name).field("flaw", &self.flaw);
        if matches!(self.flaw, Flaw::DebugLeaks | Flaw::DebugLeaksBase64) {
            let stored = self.inner.load().ok().flatten().unwrap_or_default();
            if self.flaw == Flaw::DebugLeaks {
                d.field("blob", &String::from_utf8_lossy(&stored));
            } else {
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD.encode(&stored);
                d.field("blob", &encoded);
            }
        }
        d.finish_non_exhaustive()
    }
}

/// Writes `data` to `dir/file`, mode 0600, creating `dir` (0700) if it is missing.
fn write_private(dir: &std::path::Path, file: &str, data: &[u8]) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| Error::io("create directory", dir, e))?;
    let path = dir.join(file);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    std::io::Write::write_all(&mut out, data).map_err(|e| Error::io("write", &path, e))
}

/// FNV-1a, 64 bit.
fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Makes [`BrokenMemory`] handles with one flaw, on a store of its own; provides the
/// store's hooks for corrupt data and storage faults.
pub struct MemoryFactory {
    flaw: Flaw,
    store: InMemoryStore,
    shared: Arc<Shared>,
}

impl MemoryFactory {
    /// A factory for plugins with `flaw`, on a new store.
    pub fn new(flaw: Flaw) -> Self {
        MemoryFactory {
            flaw,
            store: InMemoryStore::new(),
            shared: Arc::default(),
        }
    }
}

impl fmt::Debug for MemoryFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryFactory")
            .field("flaw", &self.flaw)
            .finish_non_exhaustive()
    }
}

fn fault_kind(fault: Fault) -> ErrorKind {
    match fault {
        Fault::StorageUnavailable => ErrorKind::StorageUnavailable,
        Fault::AccessDenied => ErrorKind::AccessDenied,
        Fault::DiskFull => ErrorKind::StorageFull,
        _ => ErrorKind::Io,
    }
}

impl PluginFactory for MemoryFactory {
    fn label(&self) -> String {
        self.flaw.spec().name.to_string()
    }

    fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
        let slot = match self.flaw {
            Flaw::OneSlotForAllNames => "the-one-slot",
            _ => ns.name.as_str(),
        };
        let inner = match self.flaw {
            Flaw::NamesUnchecked => self.store.slot(slot),
            _ => self.store.open(slot)?,
        };
        let inner = match self.flaw.inner_limit() {
            Some(max) => inner.with_max_size(max),
            None => inner,
        };
        if self.flaw == Flaw::DiesWithLastHandle {
            self.shared.meta(slot, |m| m.handles += 1);
        }
        Ok(Box::new(BrokenMemory {
            inner,
            flaw: self.flaw,
            name: slot.to_owned(),
            dir: ns.dir.clone(),
            shared: Arc::clone(&self.shared),
            id: HANDLE_IDS.fetch_add(1, Ordering::Relaxed),
            cache: Mutex::new(None),
            token: Mutex::new(None),
            holding: Arc::new(AtomicBool::new(false)),
        }))
    }

    fn corrupt_stored_data(&self, ns: &Namespace) -> Result<()> {
        self.store.corrupt(&ns.name);
        Ok(())
    }

    fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
        let kind = fault_kind(fault);
        if self.flaw.keeps_own_faults() {
            lock(&self.shared.faults).insert(ns.name.clone(), kind);
        } else {
            self.store.inject_fault(&ns.name, kind);
        }
        Ok(())
    }

    fn clear_fault(&self, ns: &Namespace, _fault: Fault) -> Result<()> {
        lock(&self.shared.faults).remove(&ns.name);
        self.store.clear_fault(&ns.name);
        Ok(())
    }
}
