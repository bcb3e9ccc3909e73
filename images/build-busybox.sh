#!/usr/bin/env bash
# Builds localhost/lev-busybox:static: an image holding only a static busybox (/bin/busybox
# and its applet links), no libc and no python3, from Debian's busybox-static package.
# Usage: images/build-busybox.sh [--force]
# Environment: LEV_ENGINE_CLI (podman or docker; default: whichever exists, podman first).
set -eo pipefail

say() { printf 'build-busybox: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

image=localhost/lev-busybox:static
engine=${LEV_ENGINE_CLI:-}
if [ -z "$engine" ]; then
    if command -v podman >/dev/null 2>&1; then engine=podman
    elif command -v docker >/dev/null 2>&1; then engine=docker
    else die "neither podman nor docker is installed (apt-get install podman)"
    fi
fi
if [ "${1:-}" != --force ] && "$engine" image inspect "$image" >/dev/null 2>&1; then
    say "$image exists (use --force to rebuild)"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/var/tmp}/lev-busybox.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
# apt-get download fetches the package alone, as the calling user, without installing it.
(cd "$work" && apt-get download -qq busybox-static >/dev/null 2>&1) || {
    apt-get update -qq >/dev/null 2>&1 || true
    (cd "$work" && apt-get download -qq busybox-static >/dev/null) ||
        die "apt-get download busybox-static failed"; }
dpkg-deb -x "$work"/busybox-static_*.deb "$work/pkg"
mkdir -p "$work/root/bin" "$work/root/tmp" "$work/root/etc"
cp "$work/pkg/bin/busybox" "$work/root/bin/busybox"
for applet in $("$work/root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$work/root/bin/$applet"
done
chmod 1777 "$work/root/tmp"
: >"$work/root/etc/hosts"; : >"$work/root/etc/resolv.conf"; : >"$work/root/etc/hostname"
tar --numeric-owner -C "$work/root" -c . | "$engine" import \
    --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$image" >"$work/import.log" 2>&1 ||
    { cat "$work/import.log" >&2; die "$engine import failed"; }
say "built $image"
