#!/usr/bin/env bash
# Builds the Linux libsecret test image (dbus + an unlocked gnome-keyring Secret Service
# reachable over TCP) from Debian packages, without any container registry:
# debootstrap a minimal rootfs, slim it, add ci/images/libsecret/, `docker import` it.
#
# Does nothing when the image is already there and was built from the current recipe
# (this script and ci/images/libsecret/, hashed into the image's label), so the gate can
# call it on every run. `--force` rebuilds anyway.
#
# Env: IDENTITY_CACHE_LIBSECRET_IMAGE (default identity-cache-libsecret:1; the container
# tests read the same variable), DEBIAN_SUITE and DEBIAN_MIRROR (default: the host's
# Debian suite and its configured mirror), TMPDIR (where the rootfs is made; it is
# deleted afterwards, nothing is written into the repository).
# Needs root (debootstrap) and a Docker engine; installs debootstrap with apt if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

image=${IDENTITY_CACHE_LIBSECRET_IMAGE:-identity-cache-libsecret:1}
recipe_dir=ci/images/libsecret
packages=dbus,dbus-x11,gnome-keyring,libsecret-tools
force=false
[[ ${1:-} == --force ]] && force=true

t0=$SECONDS
step_start=$SECONDS
step() {
    echo "build-test-image: $1 ($((SECONDS - step_start)) s)"
    step_start=$SECONDS
}
die() {
    echo "build-test-image: $*" >&2
    exit 1
}

docker info >/dev/null 2>&1 || die "no Docker engine reachable (docker info failed); the image needs one"

# The recipe's hash: a changed entrypoint, bus config or package list gives a new image
# even though the tag stays the same.
recipe_hash=$(cat "$0" "$recipe_dir"/* | sha256sum | cut -c1-16)

# One build at a time on this machine.
exec 9>"${TMPDIR:-/tmp}/identity-cache-libsecret-image.lock"
flock 9

current=$(docker image inspect --format '{{index .Config.Labels "identity-cache.recipe"}}' "$image" 2>/dev/null || true)
if [[ $force == false && $current == "$recipe_hash" ]]; then
    echo "build-test-image: $image is present and current (recipe $recipe_hash)"
    exit 0
fi
if [[ -n $current ]]; then
    echo "build-test-image: $image was built from recipe $current, rebuilding for $recipe_hash"
else
    echo "build-test-image: $image is absent, building it (recipe $recipe_hash)"
fi

[[ $(id -u) == 0 ]] || die "debootstrap needs root; run this script as root"
# debian-archive-keyring: debootstrap checks the Debian mirror's signatures with it; it is
# there on Debian, but not on Ubuntu (GitHub's runners).
tools=()
command -v debootstrap >/dev/null || tools+=(debootstrap)
[[ -e /usr/share/keyrings/debian-archive-keyring.gpg ]] || tools+=(debian-archive-keyring)
if ((${#tools[@]})); then
    echo "build-test-image: installing ${tools[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tools[@]}" >/dev/null
    step "installed ${tools[*]}"
fi

# The host's suite and mirror: the image then matches what the host tests run against.
. /etc/os-release
suite=${DEBIAN_SUITE:-}
if [[ -z $suite ]]; then
    suite=bookworm
    [[ ${ID:-} == debian && -n ${VERSION_CODENAME:-} ]] && suite=$VERSION_CODENAME
fi
mirror=${DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
    # deb822 sources: the URIs of the stanza whose Suites lists the suite.
    mirror=$(awk -v suite="$suite" '
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite && uri != "") { print uri; exit } }
        /^$/ { uri = "" }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
fi
if [[ -z $mirror ]]; then
    # One-line sources: `deb [options] URI SUITE COMPONENTS`.
    mirror=$(awk -v suite="$suite" '$1 == "deb" {
        for (i = 2; i < NF; i++) if ($(i + 1) == suite && $i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d "${TMPDIR:-/tmp}/identity-cache-libsecret.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

# dbus-x11 is not optional: gnome-keyring depends on `default-dbus-session-bus |
# dbus-session-bus`, a virtual package debootstrap cannot resolve on its own.
echo "build-test-image: debootstrap $suite from $mirror with $packages"
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
    >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed (log above)"
fi
step "debootstrap"

# Slim: downloaded .debs, apt lists, docs, translations and icons are never used here.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/{doc,man,info,locale,icons}/* "$rootfs"/var/log/*
install -D -m 0644 "$recipe_dir/bus.conf" "$rootfs/etc/identity-cache/bus.conf"
install -D -m 0755 "$recipe_dir/entrypoint.sh" "$rootfs/usr/local/bin/entrypoint.sh"
echo "build-test-image: rootfs is $(du -sh "$rootfs" | cut -f1)"
step "slimmed the rootfs and added the recipe"

old_id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]' \
    --change 'EXPOSE 55556/tcp' \
    --change "LABEL identity-cache.recipe=$recipe_hash" \
    --message "identity-cache libsecret test image, Debian $suite" \
    - "$image" >/dev/null
step "docker import"
rm -rf "$rootfs"
step "removed the rootfs"

# Prove the image before anyone relies on it: the entrypoint must reach readiness and
# a secret must round-trip inside. A broken image is removed rather than left tagged.
verify() {
    local name="identity-cache-libsecret-verify-$$"
    docker run -d --rm --name "$name" "$image" >/dev/null || return 1
    local ok=false
    for _ in $(seq 1 100); do
        if docker logs "$name" 2>&1 | grep -q 'SECRET SERVICE READY'; then
            ok=true
            break
        fi
        sleep 0.1
    done
    if [[ $ok == true ]]; then
        docker exec "$name" sh -c 'export DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus
            printf build-check | secret-tool store --label=build-check check build &&
            [ "$(secret-tool lookup check build)" = build-check ] &&
            secret-tool clear check build' || ok=false
    fi
    [[ $ok == true ]] || docker logs "$name" >&2 || true
    docker rm -f "$name" >/dev/null 2>&1 || true
    [[ $ok == true ]]
}
if ! verify; then
    docker rmi "$image" >/dev/null 2>&1 || true
    die "the new image did not start a working Secret Service; removed it"
fi
step "verified: entrypoint ready, secret-tool round trip inside"

# The image this one replaced, if nothing else uses it.
new_id=$(docker image inspect --format '{{.Id}}' "$image")
if [[ -n $old_id && $old_id != "$new_id" ]]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
fi

echo "build-test-image: built $image ($(docker image inspect --format '{{.Size}}' "$image" |
    awk '{ printf "%d MB", $1 / 1000000 }')) in $((SECONDS - t0)) s"
