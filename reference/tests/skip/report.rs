// `report_skip`, for tests skipped for missing set-up. Brought into each test support
// module that can skip with `include!` rather than `mod`: one test target often includes
// two such modules, and the same file as two modules is a clippy error.

/// Reports that `test` (one test, or the group of tests it names) is skipped because of
/// `reason`, which should say what to install: a `SKIP` line on stderr, and a line
/// appended to the file `IDENTITY_CACHE_SKIP_LOG` names, when it names one. `cargo test`
/// shows a passing test's stderr only with `--nocapture`, so `ci/test.sh` (the README's
/// test command) sets the variable and lists those lines at its end.
pub fn report_skip(test: &str, reason: &str) {
    use std::io::Write as _;
    eprintln!("SKIP {test}: {reason}");
    let Some(path) = std::env::var_os("IDENTITY_CACHE_SKIP_LOG") else {
        return;
    };
    // One write of one line in append mode: lines of concurrent tests never interleave.
    let line = format!("{test}: {}\n", reason.replace('\n', " "));
    if let Ok(mut log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // Best effort: the SKIP line is already out, and a test must not fail for its
        // report.
        let _ = log.write_all(line.as_bytes());
    }
}
