#!/usr/bin/env bash
# Bounded fuzzing of the token cache parser (reference/src/token_cache).
#
#   ci/fuzz.sh [SECONDS]     default 30
#
# With cargo-fuzz installed, runs the libFuzzer target fuzz/fuzz_targets/parse_cache.rs
# for SECONDS. libFuzzer needs nightly's -Zsanitizer; only stable exists here, so the run
# uses RUSTC_BOOTSTRAP=1 (stable's nightly features). When cargo-fuzz is absent or the
# target cannot build (no C++ compiler, a toolchain that refuses), it says so and runs the
# proptest stand-in (reference/tests/token_cache_fuzz.rs, same properties) with enough
# cases to take about as long. Either way a crash fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}

if cargo fuzz --version >/dev/null 2>&1; then
    # Failures to build are told apart from crashes: only a build failure falls back.
    if RUSTC_BOOTSTRAP=1 cargo fuzz build --fuzz-dir fuzz parse_cache; then
        mkdir -p fuzz/corpus/parse_cache
        # A scratch copy of the corpus: new inputs found in CI are not written into the repo.
        work=$(mktemp -d)
        trap 'rm -rf "$work"' EXIT
        cp -r fuzz/corpus/parse_cache/. "$work"/
        RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz parse_cache "$work" -- \
            -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048
        exit 0
    fi
    echo "fuzz.sh: the libFuzzer target did not build; running the proptest stand-in" >&2
else
    echo "fuzz.sh: cargo-fuzz is not installed; running the proptest stand-in" >&2
fi
# About 2000 cases a second per property in a debug build; bounded by the case count.
PROPTEST_CASES=$((seconds * 500)) cargo test -p identity-cache-persistence --test token_cache_fuzz
