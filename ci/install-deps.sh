#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine; does nothing where it is there.
# - e2fsprogs (chattr) and util-linux (mount): the fault tests make real "access denied"
#   (immutable attribute, since tests run as root) and "disk full" (a 64 KiB tmpfs).
# - python3 with venv and pip: the interop tests install msal-extensions from PyPI into a
#   throwaway virtual environment.
# - dbus, dbus-x11, gnome-keyring, libsecret-tools: the Secret Service tests start their own
#   private bus and gnome-keyring-daemon, and check items with secret-tool.
# - python3-gi, gir1.2-secret-1 (for Debian's /usr/bin/python3): msal-extensions'
#   LibsecretPersistence in the Secret Service interop tests, in a venv that sees them.
# - redis-server: the Redis tests start their own servers on 127.0.0.1 (the package's
#   system service is not used, and not started by this script).
set -euo pipefail

missing=()
command -v chattr >/dev/null || missing+=(e2fsprogs)
command -v mount >/dev/null || missing+=(util-linux)
command -v python3 >/dev/null || missing+=(python3 python3-venv python3-pip)
if command -v python3 >/dev/null && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi
command -v dbus-daemon >/dev/null || missing+=(dbus)
command -v dbus-launch >/dev/null || missing+=(dbus-x11)
command -v gnome-keyring-daemon >/dev/null || missing+=(gnome-keyring)
command -v secret-tool >/dev/null || missing+=(libsecret-tools)
command -v redis-server >/dev/null || missing+=(redis-server)
if ! /usr/bin/python3 -c 'import gi; gi.require_version("Secret", "1")' 2>/dev/null; then
    missing+=(python3 python3-venv python3-gi gir1.2-secret-1)
elif ! /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi

if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
