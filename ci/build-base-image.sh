#!/usr/bin/env bash
# Build the image's base from Debian's packages, for machines that cannot pull from a container
# registry: debootstrap a minimal Debian (trixie brings Python 3.13, the interpreter the lock
# files are made for) and `docker import` the root filesystem. Pass the tag to the image build:
#
#   bash ci/build-base-image.sh                       # tags stress-kit-base:trixie
#   nox -s image -- --base stress-kit-base:trixie     # or STRESS_BASE_IMAGE=stress-kit-base:trixie
#
# Needs root, debootstrap and a running Docker engine. The Debian mirror is the one this
# machine's apt uses (override with STRESS_DEBIAN_MIRROR), so it works wherever apt works.
set -euo pipefail

TAG="${1:-${STRESS_BASE_TAG:-stress-kit-base:trixie}}"
SUITE="${STRESS_BASE_SUITE:-trixie}"
# What the runner needs at run time: the interpreter and venv (the Dockerfile makes /opt/venv
# with it). memray and py-spy come as manylinux wheels that bundle their native libraries.
PACKAGES="python3,python3-venv"

die() { echo "build-base-image: $*" >&2; exit 1; }

# The first Debian archive (not the security one) named in apt's sources, deb822 or one-line.
apt_mirror() {
    local uri
    uri="$(
        {
            grep -hsE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources | sed -E 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n'
            grep -hsE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                | sed -E 's/\[[^]]*\]//' | awk '{print $2}'
        } | grep -E '^https?://[^ ]+/debian/?$' | head -n1 || true
    )"
    echo "${uri:-http://deb.debian.org/debian}"
}

[[ "$(id -u)" -eq 0 ]] || die "must run as root (debootstrap creates device nodes and chroots)"
command -v debootstrap >/dev/null || die "debootstrap is not installed: apt-get install debootstrap"
docker info >/dev/null 2>&1 || die "no Docker engine answers: start dockerd or set DOCKER_HOST"

MIRROR="${STRESS_DEBIAN_MIRROR:-$(apt_mirror)}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/stress-base.XXXXXX")"
ROOTFS="$WORK/rootfs"
cleanup() {
    # debootstrap may leave proc/sys mounted inside the rootfs if it fails half-way.
    for m in proc sys dev/pts dev; do umount -l "$ROOTFS/$m" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

start=$SECONDS
echo "build-base-image: debootstrap $SUITE from $MIRROR (minbase + $PACKAGES)"
if ! debootstrap --variant=minbase --include="$PACKAGES" --components=main \
        "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 30 "$WORK/debootstrap.log" >&2
    [[ -f "$ROOTFS/debootstrap/debootstrap.log" ]] && tail -n 30 "$ROOTFS/debootstrap/debootstrap.log" >&2
    die "debootstrap $SUITE from $MIRROR failed (log above)"
fi
bootstrapped=$SECONDS

# Keep the rootfs small: nothing here is needed to run Python.
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*.log "$ROOTFS"/var/cache/debconf/*-old \
    "$ROOTFS"/debootstrap
# Same environment the official python images set, so the Dockerfile works on either base.
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --message "debootstrap --variant=minbase $SUITE + $PACKAGES" \
    - "$TAG" >/dev/null

size="$(docker image inspect --format '{{.Size}}' "$TAG")"
echo "build-base-image: tagged $TAG ($((size / 1024 / 1024)) MiB)" \
    "in $((SECONDS - start))s (debootstrap $((bootstrapped - start))s, import $((SECONDS - bootstrapped))s)"
docker run --rm --network none "$TAG" python3 -c 'import sys, venv; print("base python", sys.version.split()[0])'
