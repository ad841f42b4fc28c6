#!/bin/sh
# Entrypoint of the identity-cache-libsecret test image: a session bus on TCP port
# 55556 (see bus.conf) with an unlocked gnome-keyring Secret Service on it. Prints
# "SECRET SERVICE READY" once org.freedesktop.secrets answers and the default
# collection exists, then waits until the container is stopped.
set -eu
start=$(date +%s%N)
export HOME=/root XDG_RUNTIME_DIR=/run/user/0
mkdir -p "$XDG_RUNTIME_DIR" "$HOME"
chmod 700 "$XDG_RUNTIME_DIR"

dbus-daemon --config-file=/etc/identity-cache/bus.conf --fork --print-pid=1 >/run/bus.pid
export DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus

# With no login keyring yet, --unlock creates one with this password, unlocked.
printf '%s' "${KEYRING_PASSWORD:-test}" | gnome-keyring-daemon --unlock --components=secrets >/dev/null

# gnome-keyring-daemon daemonizes before it owns its bus name: wait for the name and
# for the "default" alias, which must point at an existing collection.
i=0
until dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets \
    org.freedesktop.Secret.Service.ReadAlias string:default 2>/dev/null |
    grep -q 'object path "/org/freedesktop/secrets/collection/'; do
    i=$((i + 1))
    if [ "$i" -ge 200 ]; then
        echo "SECRET SERVICE FAILED: no default collection after 10 s" >&2
        exit 1
    fi
    sleep 0.05
done

ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "SECRET SERVICE READY on tcp port 55556 after ${ms} ms"
# sh is PID 1: without a trap, `docker stop` would wait 10 s for SIGKILL.
trap 'exit 0' TERM INT
sleep infinity &
wait
