#!/usr/bin/env bash
# Formatting and lints, as the gate runs them on every OS.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
# The test targets link the system libdbus (dbus-secret-service-keyring-store): clippy
# compiles them, so the build packages go in first (nothing to do off Linux or when there).
ci/install-deps.sh build
cargo clippy --workspace --all-targets -- -D warnings
