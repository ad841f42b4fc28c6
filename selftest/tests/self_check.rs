//! The suite checks itself: the correct in-memory plugin passes every case that applies
//! to it, and plugins broken in one way each fail the case named for that rule (and the
//! failure says which rule, what was expected, and how to rerun it).
//!
//! The plugins are those of the catalogue ([`broken`]), looked up by name; the catalogue test
//! checks that each is caught, these check what the suite's reports say about the trickiest
//! checks (timing, tokens, Debug, the model's shrinking) at a fixed seed.

use std::sync::Arc;

use conformance::{Config, Outcome, Suite, all_cases, select};
use conformance_selftest::broken::{
    self,
    memory::{Flaw, MemoryFactory},
};

fn config() -> Config {
    let mut config = Config::new();
    config.seed = 42;
    config.cases = 64;
    config
}

/// Runs the cases matching `filter` against the catalogue's plugin called `plugin`.
fn run(plugin: &str, filter: &str) -> conformance::Report {
    let factory = broken::find(plugin)
        .unwrap_or_else(|| panic!("{plugin} is not in the catalogue"))
        .factory;
    let suite = Suite::new(factory, config()).expect("scratch directory");
    let cases = select(&all_cases(), &[filter.to_string()]).expect("valid filter");
    assert!(!cases.is_empty(), "no case matches {filter}");
    suite.run(&cases)
}

#[test]
fn correct_memory_plugin_passes_everything_that_applies() {
    let suite =
        Suite::new(Arc::new(MemoryFactory::new(Flaw::None)), config()).expect("scratch directory");
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

/// Runs `filter` against the catalogue's plugin called `plugin` and asserts `case` fails.
fn assert_caught(plugin: &str, filter: &str, case: &str) -> conformance::Failure {
    let report = run(plugin, filter);
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
        other => panic!("{case} should fail for {plugin}, got {other:?}"),
    }
}

#[test]
fn no_op_lock_is_caught() {
    assert_caught(
        "memory_no_op_lock",
        "lock::excludes_other_handle",
        "lock::excludes_other_handle",
    );
    assert_caught(
        "memory_no_op_lock",
        "lock::excludes_across_threads",
        "lock::excludes_across_threads",
    );
    assert_caught(
        "memory_no_op_lock",
        "concurrency::no_lost_updates_threads",
        "concurrency::no_lost_updates_threads",
    );
}

#[test]
fn lock_that_does_not_wait_is_caught() {
    let failure = assert_caught(
        "memory_timeout_at_once",
        "lock::waits_before_timeout",
        "lock::waits_before_timeout",
    );
    assert!(failure.expected.contains("whole wait"), "{failure}");
    // And the bounded-timeout case does not blame it for the wrong rule.
    let report = run("memory_timeout_at_once", "lock::timeout_is_bounded");
    assert_eq!(report.cases[0].outcome, Outcome::Passed);
}

#[test]
fn length_as_token_is_caught() {
    assert_caught(
        "memory_token_is_length",
        "change::moves_on_same_size_saves",
        "change::moves_on_same_size_saves",
    );
}

#[test]
fn debug_leak_is_caught_without_repeating_the_secret() {
    let failure = assert_caught(
        "memory_secret_in_debug",
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
        "memory_secret_in_debug_base64",
        "security::blob_not_in_debug",
        "security::blob_not_in_debug",
    );
}

#[test]
fn stale_load_is_caught() {
    assert_caught(
        "memory_stale_cache",
        "contract::handles_share_slot",
        "contract::handles_share_slot",
    );
}

#[test]
fn dropped_tail_is_caught() {
    assert_caught(
        "memory_drops_last_byte_above_100kib",
        "contract::round_trip_1mib",
        "contract::round_trip_1mib",
    );
}

#[test]
fn logged_blob_is_caught() {
    assert_caught(
        "memory_secret_in_logs",
        "security::blob_not_in_logs",
        "security::blob_not_in_logs",
    );
}

#[test]
#[cfg(unix)] // file modes are checked on Unix only
fn world_readable_file_is_caught() {
    assert_caught(
        "file_world_readable",
        "security::files_private",
        "security::files_private",
    );
}

#[test]
#[cfg(unix)] // file modes are checked on Unix only
fn open_directory_is_caught() {
    assert_caught(
        "file_open_directory",
        "security::dirs_private",
        "security::dirs_private",
    );
}

#[test]
fn plaintext_beside_encrypted_store_is_caught() {
    assert_caught(
        "memory_plaintext_beside_encrypted",
        "security::no_plaintext_at_rest",
        "security::no_plaintext_at_rest",
    );
}

#[test]
fn blob_in_error_message_is_caught() {
    assert_caught(
        "memory_secret_in_errors",
        "security::blob_not_in_errors",
        "security::blob_not_in_errors",
    );
}

#[test]
fn torn_save_is_caught() {
    assert_caught(
        "memory_torn_save",
        "concurrency::no_torn_reads_threads",
        "concurrency::no_torn_reads_threads",
    );
    assert_caught(
        "memory_torn_save",
        "concurrency::linearizable_register",
        "concurrency::linearizable_register",
    );
}

#[test]
fn token_moving_on_reads_is_caught() {
    assert_caught(
        "memory_token_moves_on_read",
        "change::stable_without_saves",
        "change::stable_without_saves",
    );
}

#[test]
fn lock_never_released_is_caught() {
    assert_caught(
        "memory_lock_never_released",
        "lock::release_on_drop",
        "lock::release_on_drop",
    );
}

#[test]
fn reentrant_lock_is_caught() {
    assert_caught(
        "memory_reentrant_lock",
        "lock::not_reentrant",
        "lock::not_reentrant",
    );
}

#[test]
fn unavailable_storage_read_as_empty_is_caught() {
    assert_caught(
        "memory_load_fault_as_absent",
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
        assert_caught("memory_swallows_save_errors", case, case);
    }
}

#[test]
fn blob_lost_under_a_fault_is_caught() {
    for case in [
        "faults::storage_unavailable_keeps_blob",
        "faults::access_denied_keeps_blob",
        "faults::disk_full_keeps_blob",
    ] {
        assert_caught("memory_failed_save_empties_blob", case, case);
    }
}

#[test]
fn corrupt_data_read_as_empty_is_caught() {
    assert_caught(
        "memory_corrupt_as_absent",
        "input::corrupt_is_corrupt_data",
        "input::corrupt_is_corrupt_data",
    );
    assert_caught(
        "memory_corrupt_as_absent",
        "input::corrupt_left_in_place",
        "input::corrupt_left_in_place",
    );
}

#[test]
fn model_shrinks_to_a_minimal_sequence() {
    let failure = assert_caught(
        "memory_delete_always_true",
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
