//! The suite checks itself: a small correct in-memory plugin passes every case that applies
//! to it, and plugins broken in one way each fail the case named for that rule (and the
//! failure says which rule, what was expected, and how to rerun it).
//!
//! The full catalogue of broken plugins is `conformance_selftest::broken`; these few guard the
//! suite's own trickiest checks (timing, tokens, Debug, the model's shrinking).

mod common;

use std::sync::Arc;

use common::{Break, MemoryFactory};
use conformance::{Config, Outcome, Suite, all_cases, select};

fn config() -> Config {
    let mut config = Config::new();
    config.seed = 42;
    config.cases = 64;
    config
}

fn run(broken: Break, filter: &str) -> conformance::Report {
    let suite =
        Suite::new(Arc::new(MemoryFactory::new(broken)), config()).expect("scratch directory");
    let cases = select(&all_cases(), &[filter.to_string()]).expect("valid filter");
    assert!(!cases.is_empty(), "no case matches {filter}");
    suite.run(&cases)
}

#[test]
fn correct_memory_plugin_passes_everything_that_applies() {
    let suite =
        Suite::new(Arc::new(MemoryFactory::new(Break::None)), config()).expect("scratch directory");
    let report = suite.run(&all_cases());
    assert!(report.passed(), "{}", conformance::report::human(&report));
    // Multi-process cases do not apply to an in-process plugin, and say why.
    let skipped = report
        .case("lock::excludes_other_process")
        .expect("registered");
    assert!(
        matches!(&skipped.outcome, Outcome::Skipped(r) if r.contains("not shared across processes")),
        "{skipped:?}"
    );
}

/// Runs `filter` against a plugin broken by `broken` and asserts `case` fails.
fn assert_caught(broken: Break, filter: &str, case: &str) -> conformance::Failure {
    let report = run(broken, filter);
    let found = report
        .case(case)
        .unwrap_or_else(|| panic!("{case} not run"));
    match &found.outcome {
        Outcome::Failed(f) => {
            assert!(
                f.rerun.contains(case) && f.rerun.contains("42"),
                "rerun hint names case and seed: {}",
                f.rerun
            );
            f.clone()
        }
        other => panic!("{case} should fail for {broken:?}, got {other:?}"),
    }
}

#[test]
fn no_op_lock_is_caught() {
    assert_caught(
        Break::NoOpLock,
        "lock::excludes_other_handle",
        "lock::excludes_other_handle",
    );
    assert_caught(
        Break::NoOpLock,
        "lock::excludes_across_threads",
        "lock::excludes_across_threads",
    );
    assert_caught(
        Break::NoOpLock,
        "concurrency::no_lost_updates_threads",
        "concurrency::no_lost_updates_threads",
    );
}

#[test]
fn lock_that_does_not_wait_is_caught() {
    let failure = assert_caught(
        Break::TimeoutAtOnce,
        "lock::waits_before_timeout",
        "lock::waits_before_timeout",
    );
    assert!(failure.expected.contains("whole wait"), "{failure}");
    // And the bounded-timeout case does not blame it for the wrong rule.
    let report = run(Break::TimeoutAtOnce, "lock::timeout_is_bounded");
    assert_eq!(report.cases[0].outcome, Outcome::Passed);
}

#[test]
fn length_as_token_is_caught() {
    assert_caught(
        Break::TokenIsLength,
        "change::moves_on_same_size_saves",
        "change::moves_on_same_size_saves",
    );
}

#[test]
fn debug_leak_is_caught_without_repeating_the_secret() {
    let failure = assert_caught(
        Break::DebugLeaks,
        "security::blob_not_in_debug",
        "security::blob_not_in_debug",
    );
    assert!(
        !failure.to_string().contains("conformance-secret"),
        "{failure}"
    );
}

#[test]
fn base64_debug_leak_is_caught() {
    assert_caught(
        Break::DebugLeaksBase64,
        "security::blob_not_in_debug",
        "security::blob_not_in_debug",
    );
}

#[test]
fn stale_load_is_caught() {
    assert_caught(
        Break::StaleLoad,
        "contract::handles_share_slot",
        "contract::handles_share_slot",
    );
}

#[test]
fn dropped_tail_is_caught() {
    assert_caught(
        Break::DropsTail,
        "contract::round_trip_1mib",
        "contract::round_trip_1mib",
    );
}

#[test]
fn logged_blob_is_caught() {
    assert_caught(
        Break::LogsBlob,
        "security::blob_not_in_logs",
        "security::blob_not_in_logs",
    );
}

#[test]
#[cfg(unix)] // file modes are checked on Unix only
fn world_readable_file_is_caught() {
    assert_caught(
        Break::WorldReadableFile,
        "security::files_private",
        "security::files_private",
    );
}

#[test]
#[cfg(unix)] // file modes are checked on Unix only
fn open_directory_is_caught() {
    assert_caught(
        Break::OpenDirectory,
        "security::dirs_private",
        "security::dirs_private",
    );
}

#[test]
fn plaintext_beside_encrypted_store_is_caught() {
    assert_caught(
        Break::PlaintextBeside,
        "security::no_plaintext_at_rest",
        "security::no_plaintext_at_rest",
    );
}

#[test]
fn blob_in_error_message_is_caught() {
    assert_caught(
        Break::ErrorLeaks,
        "security::blob_not_in_errors",
        "security::blob_not_in_errors",
    );
}

#[test]
fn torn_save_is_caught() {
    assert_caught(
        Break::TornSave,
        "concurrency::no_torn_reads_threads",
        "concurrency::no_torn_reads_threads",
    );
    assert_caught(
        Break::TornSave,
        "concurrency::linearizable_register",
        "concurrency::linearizable_register",
    );
}

#[test]
fn token_moving_on_reads_is_caught() {
    assert_caught(
        Break::TokenMovesOnRead,
        "change::stable_without_saves",
        "change::stable_without_saves",
    );
}

#[test]
fn lock_never_released_is_caught() {
    assert_caught(
        Break::LockNeverReleased,
        "lock::release_on_drop",
        "lock::release_on_drop",
    );
}

#[test]
fn reentrant_lock_is_caught() {
    assert_caught(
        Break::Reentrant,
        "lock::not_reentrant",
        "lock::not_reentrant",
    );
}

#[test]
fn unavailable_storage_read_as_empty_is_caught() {
    assert_caught(
        Break::UnavailableIsNone,
        "faults::storage_unavailable_load_kind",
        "faults::storage_unavailable_load_kind",
    );
}

#[test]
fn swallowed_errors_are_caught() {
    for case in [
        "faults::storage_unavailable_kind",
        "faults::access_denied_kind",
        "faults::disk_full_kind",
    ] {
        assert_caught(Break::SwallowsErrors, case, case);
    }
}

#[test]
fn blob_lost_under_a_fault_is_caught() {
    for case in [
        "faults::storage_unavailable_keeps_blob",
        "faults::access_denied_keeps_blob",
        "faults::disk_full_keeps_blob",
    ] {
        assert_caught(Break::LosesBlobOnFault, case, case);
    }
}

#[test]
fn corrupt_data_read_as_empty_is_caught() {
    assert_caught(
        Break::CorruptAsEmpty,
        "input::corrupt_is_corrupt_data",
        "input::corrupt_is_corrupt_data",
    );
    assert_caught(
        Break::CorruptAsEmpty,
        "input::corrupt_left_in_place",
        "input::corrupt_left_in_place",
    );
}

#[test]
fn model_shrinks_to_a_minimal_sequence() {
    let failure = assert_caught(
        Break::DeleteAlwaysTrue,
        "model::",
        "model::sequences_match_model",
    );
    // Minimal: one delete of an absent blob (possibly preceded by nothing at all).
    assert!(
        failure
            .actual
            .contains("minimal failing sequence (1 steps)"),
        "{failure}"
    );
    assert!(failure.actual.contains("delete()"), "{failure}");
}
