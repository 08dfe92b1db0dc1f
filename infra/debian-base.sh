#!/usr/bin/env bash
# Make a Debian 12 (bookworm) base image with Python 3 from Debian's own packages, for hosts that reach
# a Debian mirror but no image registry (the docker test builds the image on it):
#   bash infra/debian-base.sh worldmill-base:bookworm && docker build --build-arg BASE=worldmill-base:bookworm ...
# Needs root, debootstrap and a docker daemon. Usage: bash infra/debian-base.sh TAG [MIRROR]
set -euo pipefail
TAG="${1:?usage: debian-base.sh TAG [MIRROR]}"
MIRROR="${2:-http://deb.debian.org/debian}"
ROOTFS="$(mktemp -d)"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 ||
  { tail -20 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; exit 1; }
rm -f "$ROOTFS.log"
# what an image does not need: downloaded packages, package lists, documentation
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* \
  "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/*
tar -C "$ROOTFS" -c . | docker import --change 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
echo "debian-base: $TAG ($(docker image inspect --format '{{.Size}}' "$TAG" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
