#!/usr/bin/env bash
# Mutation testing of the reference plugin's core (name.rs, persistence.rs, backends/file,
# lock), judged by what a plugin author runs: the conformance suite against
# FilePersistence (`cargo test -p conformance --test reference`), not the crate's own unit
# tests. The question is what the suite catches. Results and every survivor: MUTANTS.md.
#
#   ci/mutants.sh            the gate: mutants in the reference code changed since
#                            $MUTANTS_BASE (default HEAD~1), at most $MUTANTS_MAX (15) of
#                            them, a fixed shard beyond that; nothing to do when that code
#                            did not change
#   ci/mutants.sh --all      every mutant of those files (hours on 2 cores; MUTANTS.md)
#
# Mutants explained as equivalent in MUTANTS.md are excluded in .cargo/mutants.toml. Fails
# when a mutant survives.
set -euo pipefail
cd "$(dirname "$0")/.."

files=(-f 'reference/src/name.rs' -f 'reference/src/persistence.rs'
    -f 'reference/src/backends/file/*.rs' -f 'reference/src/lock/*.rs')
judge=(--timeout 300 --test-package conformance -- --test reference)

ensure_tool() {
    if ! cargo mutants --version >/dev/null 2>&1; then
        echo "mutants: installing cargo-mutants"
        cargo install --locked --quiet cargo-mutants --version 27.1.0
    fi
}

if [[ ${1:-} == --all ]]; then
    ensure_tool
    exec cargo mutants "${files[@]}" "${judge[@]}"
fi

base=${MUTANTS_BASE:-HEAD~1}
if ! git rev-parse --verify --quiet "$base" >/dev/null; then
    echo "mutants: no $base in this clone (shallow?); nothing to compare with"
    exit 0
fi
diff=$(mktemp)
trap 'rm -f "$diff"' EXIT
git diff "$base" -- reference/src/name.rs reference/src/persistence.rs \
    reference/src/backends/file reference/src/lock >"$diff"
if [[ ! -s $diff ]]; then
    echo "mutants: the reference plugin's core did not change since $base"
    exit 0
fi
ensure_tool
count=$(cargo mutants --list "${files[@]}" --in-diff "$diff" | wc -l)
max=${MUTANTS_MAX:-15}
if ((count == 0)); then
    echo "mutants: the change since $base makes no mutant"
    exit 0
fi
shards=$(((count + max - 1) / max))
echo "mutants: $count in the change since $base; testing shard 0 of $shards"
cargo mutants "${files[@]}" --in-diff "$diff" --shard "0/$shards" "${judge[@]}"
