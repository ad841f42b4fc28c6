#!/usr/bin/env bash
# The README's test command: sets up what the tests need, then runs every test.
#
#   ci/test.sh [ARGS...]           cargo test --workspace [ARGS...]
#   ci/test.sh --junit             the same tests through nextest (profile `ci`, JUnit at
#                                  target/nextest/ci/junit.xml), then the doctests, which
#                                  nextest does not run: the GitHub workflow's form
#
# 1. Installs the Debian packages the tests need (ci/install-deps.sh: as root, or through
#    password-less sudo).
# 2. Builds the libsecret container test image when it is absent or out of date
#    (ci/build-test-image.sh), when a Docker engine is reachable.
# 3. Runs the tests.
# 4. Ends with what it could not set up and why, and every test skipped for missing
#    set-up with its reason (the tests append them to $IDENTITY_CACHE_SKIP_LOG; see
#    reference/tests/skip/mod.rs). A set-up step that fails does not stop the run: the
#    tests that need it say so and are skipped, except with CI set, where they fail.
set -uo pipefail
cd "$(dirname "$0")/.."

problems=()
as_root() {
    if [[ $(id -u) == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        echo "test.sh: $1 needs root, and password-less sudo is not available" >&2
        return 1
    fi
}

echo "=== set-up: Debian packages (ci/install-deps.sh)"
deps_log=$(mktemp)
trap 'rm -f "$deps_log" "${skip_log:-}"' EXIT
ci/install-deps.sh tests 2>&1 | tee "$deps_log"
if ((PIPESTATUS[0] != 0)); then
    while IFS= read -r line; do
        problems+=("${line#install-deps: }")
    done < <(grep '^install-deps: could not' "$deps_log")
    ((${#problems[@]})) || problems+=("ci/install-deps.sh failed (its output is above)")
fi

if [[ $(uname -s) == Linux ]]; then
    echo "=== set-up: libsecret container test image (ci/build-test-image.sh)"
    if ! command -v docker >/dev/null; then
        problems+=("the container test image: no docker command (install Docker Engine)")
    elif ! docker info >/dev/null 2>&1; then
        problems+=("the container test image: no Docker engine reachable (docker info failed)")
    elif ! as_root ci/build-test-image.sh; then
        problems+=("the container test image: ci/build-test-image.sh failed (its output is above)")
    fi
fi

skip_log=$(mktemp)
export IDENTITY_CACHE_SKIP_LOG=$skip_log
echo "=== tests"
if [[ ${1:-} == --junit ]]; then
    cargo nextest run --workspace --profile ci && cargo test --workspace --doc
else
    cargo test --workspace "$@"
fi
status=$?

echo "=== set-up summary"
if ((${#problems[@]})); then
    echo "could not set up:"
    printf '  - %s\n' "${problems[@]}"
else
    echo "set-up complete: every package installed, the test image present"
fi
if [[ -s $skip_log ]]; then
    echo "tests skipped for missing set-up ($(sort -u "$skip_log" | wc -l)):"
    sort -u "$skip_log" | sed 's/^/  - /'
else
    echo "no test skipped for missing set-up"
fi
exit "$status"
