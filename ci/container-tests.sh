#!/usr/bin/env bash
# The Linux libsecret container stage: builds the test image when it is absent (or its
# recipe changed), then runs the container tests, which start it through testcontainers
# and check the Secret Service backend and the whole conformance suite against the
# gnome-keyring inside. Prints how long each part took.
#
# Without a Docker engine: prints SKIP with the reason and succeeds, unless CI is set,
# where it fails. Extra arguments go to the test binary (e.g. `-- container::`, or
# `--exact lock::blocks_other_process`).
set -euo pipefail
cd "$(dirname "$0")/.."

in_ci() { [[ -n ${CI:-} && ${CI} != false && ${CI} != 0 ]]; }

if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
    reason="no Docker engine reachable (docker info failed or no docker CLI)"
    if in_ci; then
        echo "container-tests: FAIL: CI is set and $reason" >&2
        exit 1
    fi
    echo "container-tests: SKIP: $reason; the libsecret container tests need one"
    exit 0
fi

# Containers a killed earlier run left behind (ours only: labelled by the tests, each
# with its target's name; the keyring_store_*_container targets start them too).
leftovers=$(docker ps -aq --filter label=identity-cache.test)
if [[ -n $leftovers ]]; then
    echo "container-tests: removing leftover test containers: $(echo $leftovers)"
    docker rm -f $leftovers >/dev/null
fi

start=$SECONDS
ci/build-test-image.sh
echo "container-tests: image ready in $((SECONDS - start)) s"

start=$SECONDS
# Build first, so the test time below is the tests' own.
cargo test -p conformance --test container_secret_service --no-run
echo "container-tests: test binary built in $((SECONDS - start)) s"

start=$SECONDS
cargo test -p conformance --test container_secret_service -- "$@"
echo "container-tests: tests ran in $((SECONDS - start)) s"
