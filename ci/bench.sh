#!/usr/bin/env bash
# Runs every benchmark and writes BENCHMARKS.md with the ratios against the baselines
# measured in the same run, the peer (Python msal-extensions) measured in the same run,
# and the machine they were measured on; and replaces the README's table of this project
# against msal-extensions with this run's ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
log=target/bench.log
: >"$log"
# Benchmarks are only comparable on a quiet machine: say how loaded this one was.
echo "RESULT machine load at the start: $(uptime)" | tee -a "$log"
cargo bench -p identity-cache-persistence 2>&1 | tee -a "$log"

# The whole conformance suite against the reference plugin, timed as a user runs it.
cargo build --release -q -p conformance
start=$(date +%s.%N)
./target/release/conformance --plugin file >target/bench-conformance.txt 2>&1
end=$(date +%s.%N)
summary=$(tail -n 1 target/bench-conformance.txt)
printf 'RESULT full conformance suite against the file plugin (release build): %.1f s (%s)\n' \
    "$(echo "$end - $start" | bc)" "$summary" | tee -a "$log"

# The peer, Python msal-extensions, in a throwaway venv (as the interop tests make theirs),
# on the same disk as our benchmarks' files (target/tmp).
scratch=$(mktemp -d -p target/tmp bench-peers.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python3 -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install --quiet --disable-pip-version-check \
    "msal-extensions[portalocker]>=1.3,<2"
"$scratch/venv/bin/python" ci/bench_peers.py "$scratch/files" 2>&1 | tee -a "$log"

echo "RESULT machine load at the end: $(uptime)" | tee -a "$log"
python3 ci/bench_report.py --readme README.md target/criterion "$log" >BENCHMARKS.md
echo "wrote BENCHMARKS.md and the README's peer table"
