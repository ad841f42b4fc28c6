#!/usr/bin/env bash
# Type-checks and lints the workspace for Windows and macOS on this Linux machine, with
# the flags of ci/check.sh (clippy --workspace --all-targets -D warnings), so code that
# only those systems compile cannot break their GitHub jobs unseen.
#
#   ci/cross-check.sh [TARGET...]   default: x86_64-pc-windows-msvc aarch64-apple-darwin
#
# How: rustup here has only the Linux standard library and cannot download another, so
# this uses Debian's second toolchain (rustc-web, rust-web-src, rust-web-clippy; installed
# by ci/install-deps.sh) and builds `std` for each target from its source (-Zbuild-std,
# unlocked on that stable compiler by RUSTC_BOOTSTRAP=1: for this check only, never for a
# build that ships). Its own target directory (target/cross-check) keeps the two
# toolchains' artefacts apart and is reused between runs.
#
# What it cannot show: behaviour. Nothing is linked or run; that is the GitHub jobs' part.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
# x86_64-apple-darwin is left out by default: no code here depends on the architecture,
# only on the OS, and it would add about 85 s to a fresh gate. Name it to check it too.
((${#targets[@]})) || targets=(x86_64-pc-windows-msvc aarch64-apple-darwin)

ci/install-deps.sh cross-check
for tool in /usr/bin/rustc /usr/bin/cargo /usr/bin/cargo-clippy /usr/bin/clippy-driver; do
    [[ -x $tool ]] || {
        echo "cross-check: $tool is missing; run ci/install-deps.sh (Debian's rustc-web," \
            "rust-web-src and rust-web-clippy)" >&2
        exit 1
    }
done
[[ -d /usr/lib/rustlib/src/rust/library ]] || {
    echo "cross-check: the standard library source is missing (Debian's rust-web-src)" >&2
    exit 1
}

# Build scripts that compile C for the target (aws-lc-sys, ring, stacker) find no MSVC or
# Apple compiler here. A check links nothing, so a stand-in that only creates the files it
# is asked for gets past them; it is used for this check and nothing else.
stub=$PWD/ci/cross-check/stub-cc

total_start=$SECONDS
times=()
for target in "${targets[@]}"; do
    start=$SECONDS
    echo "=== cross-check: clippy for $target"
    var=${target//-/_}
    # /usr/bin first: Debian's cargo must find Debian's cargo-clippy, not rustup's proxy.
    env PATH="/usr/bin:$PATH" \
        RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_DIR="$PWD/target/cross-check" \
        "CC_$var=$stub" "CXX_$var=$stub" "AR_$var=$stub" \
        /usr/bin/cargo clippy -Zbuild-std=std,panic_abort --target "$target" \
        --workspace --all-targets --quiet -- -D warnings
    times+=("$target: $((SECONDS - start)) s")
done
echo "=== cross-check: every target clean"
printf '    %s\n' "${times[@]}"
echo "    total: $((SECONDS - total_start)) s"
