#!/usr/bin/env bash
# Installs the Debian packages a group of checks needs; does nothing where they are there.
#
#   ci/install-deps.sh [--check] [GROUP...]     GROUP: tests (default), build, cross-check
#
# build (ci/check.sh, before clippy compiles the test targets; part of tests too):
# - libdbus-1-dev and pkg-config: the conformance dev-dependency
#   dbus-secret-service-keyring-store links the system libdbus (its build script finds it
#   with pkg-config), so without them the workspace's test targets do not compile at all.
# tests: what build needs, and
# - e2fsprogs (chattr) and util-linux (mount): the fault tests make real "access denied"
#   (immutable attribute, since tests run as root) and "disk full" (a 64 KiB tmpfs).
# - python3 with venv and pip: the interop tests install msal-extensions from PyPI into a
#   throwaway virtual environment.
# - dbus, dbus-x11, gnome-keyring, libsecret-tools: the Secret Service tests start their own
#   private bus and gnome-keyring-daemon, and check items with secret-tool.
# - python3-gi, gir1.2-secret-1 (for Debian's /usr/bin/python3): msal-extensions'
#   LibsecretPersistence in the Secret Service interop tests, in a venv that sees them.
# - keyutils (keyctl): the kernel-keyring tests unlink and revoke the cache key as a user
#   would, and the interop test reads and makes keys with it.
# - redis-server: the Redis tests start their own servers on 127.0.0.1 (the package's
#   system service is not used, and not started by this script).
# cross-check (ci/cross-check.sh):
# - rustc-web, rust-web-src, rust-web-clippy: a second toolchain with the standard
#   library's source, to type-check the Windows and macOS code here.
#
# Installing needs root: run as root, or with password-less sudo (used when available).
# Otherwise, and with --check, it only lists what is missing and exits 2, each missing
# package on a line `install-deps: missing PACKAGE (needed by GROUP)`. Off Linux there is
# nothing to install: the macOS and Windows jobs need none of these.
set -euo pipefail

check_only=false
groups=()
for arg in "$@"; do
    case $arg in
        --check) check_only=true ;;
        tests | build | cross-check) groups+=("$arg") ;;
        *) echo "install-deps: unknown argument $arg" >&2; exit 64 ;;
    esac
done
((${#groups[@]})) || groups=(tests)

if [[ $(uname -s) != Linux ]]; then
    echo "install-deps: nothing to install on $(uname -s)"
    exit 0
fi

missing=()
need() { # need GROUP PACKAGE...
    local group=$1
    shift
    for package in "$@"; do
        [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
        why["$package"]=$group
    done
}
declare -A why=()
for group in "${groups[@]}"; do
    case $group in
    tests | build)
        command -v pkg-config >/dev/null || need "$group" pkg-config
        # The headers and dbus-1.pc, not the runtime library every Debian has.
        [[ -f /usr/include/dbus-1.0/dbus/dbus.h ]] || need "$group" libdbus-1-dev
        ;;&
    tests)
        command -v chattr >/dev/null || need tests e2fsprogs
        command -v mount >/dev/null || need tests util-linux
        command -v python3 >/dev/null || need tests python3 python3-venv python3-pip
        command -v dbus-daemon >/dev/null || need tests dbus
        command -v dbus-launch >/dev/null || need tests dbus-x11
        command -v gnome-keyring-daemon >/dev/null || need tests gnome-keyring
        command -v secret-tool >/dev/null || need tests libsecret-tools
        command -v redis-server >/dev/null || need tests redis-server
        command -v keyctl >/dev/null || need tests keyutils
        if ! /usr/bin/python3 -c 'import gi; gi.require_version("Secret", "1")' 2>/dev/null; then
            need tests python3 python3-gi gir1.2-secret-1
        fi
        for python in python3 /usr/bin/python3; do
            if command -v "$python" >/dev/null && ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
                need tests python3-venv
            fi
        done
        ;;
    cross-check)
        [[ -x /usr/bin/rustc && -x /usr/bin/cargo ]] || need cross-check rustc-web
        [[ -d /usr/lib/rustlib/src/rust/library ]] || need cross-check rust-web-src
        [[ -x /usr/bin/cargo-clippy ]] || need cross-check rust-web-clippy
        ;;
    esac
done

((${#missing[@]})) || exit 0

report_missing() {
    for package in "${missing[@]}"; do
        echo "install-deps: missing $package (needed by ${why[$package]})"
    done
}
if [[ $check_only == true ]]; then
    report_missing
    exit 2
fi
if [[ $(id -u) == 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    report_missing
    echo "install-deps: could not install ${missing[*]}: installing needs root, and" \
        "password-less sudo is not available; run: sudo ci/install-deps.sh ${groups[*]}"
    exit 2
fi
echo "install-deps: installing ${missing[*]}"
if ! "${as_root[@]}" apt-get update -qq ||
    ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; then
    report_missing
    echo "install-deps: could not install ${missing[*]}: apt-get failed (its output is above)"
    exit 2
fi
