#!/usr/bin/env bash
# Mutation testing of the reference plugin's core (name.rs, persistence.rs, backends/file,
# lock), judged by what a plugin author runs: the conformance suite against
# FilePersistence (`cargo test -p conformance --test reference`), not the crate's own unit
# tests. The question is what the suite catches. Results and every survivor: MUTANTS.md.
#
#   ci/mutants.sh            the gate: mutants in the reference code changed since
#                            $MUTANTS_BASE (default HEAD~1), at most $MUTANTS_MAX (4) of
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
# The mutated crate is the reference crate, the judge the suite in the conformance package:
# the whole workspace is built, and only its `reference` test target (conformance's) runs.
# cargo-mutants runs its baseline on the mutated package's tests only, whatever
# --test-workspace says (27.1), and that package has no `reference` target: the baseline
# is skipped here; the gate runs the suite unmutated in its own stages.
judge=(--baseline=skip --timeout 300 --build-timeout 900 --test-workspace=true -- --test reference)

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
max=${MUTANTS_MAX:-4}
if ((count == 0)); then
    echo "mutants: the change since $base makes no mutant"
    exit 0
fi
shards=$(((count + max - 1) / max))
# In CI the clone is the gate's own and already built: mutate it in place, so each mutant
# is an incremental build rather than a whole workspace built in a fresh copy.
place=()
[[ -n ${CI:-} ]] && place=(--in-place)
echo "mutants: $count in the change since $base; testing shard 0 of $shards"
cargo mutants "${files[@]}" --in-diff "$diff" --shard "0/$shards" "${place[@]}" "${judge[@]}"
