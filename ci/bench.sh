#!/usr/bin/env bash
# Runs every benchmark and writes BENCHMARKS.md with the ratios against the baselines
# measured in the same run, and the machine they were measured on.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
log=target/bench.log
: >"$log"
cargo bench -p identity-cache-persistence 2>&1 | tee -a "$log"

# The whole conformance suite against the reference plugin, timed as a user runs it.
cargo build --release -q -p conformance
start=$(date +%s.%N)
./target/release/conformance --plugin file >target/bench-conformance.txt 2>&1
end=$(date +%s.%N)
summary=$(tail -n 1 target/bench-conformance.txt)
printf 'RESULT full conformance suite against the file plugin (release build): %.1f s (%s)\n' \
    "$(echo "$end - $start" | bc)" "$summary" | tee -a "$log"

python3 ci/bench_report.py target/criterion "$log" >BENCHMARKS.md
echo "wrote BENCHMARKS.md"
