#!/usr/bin/env bash
# The tests with JUnit output for the GitHub workflow: nextest (profile `ci`, JUnit at
# target/nextest/ci/junit.xml) and then the doctests, which nextest does not run.
# Locally and in .ci/run the README's `cargo test --workspace` runs the same tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo nextest run --workspace --profile ci
cargo test --workspace --doc
