#!/usr/bin/env bash
# Builds every image the container tests use, locally and with no image registry (see README.md):
#   localhost/lev-nopython:bookworm   minbase, no python3 ("image without python3" error test)
#   localhost/lev-base:bookworm       + python3 (base of the example Dockerfiles)
#   localhost/lev-nmap:latest, :test  + python3 + nmap (the nmap example's modes)
#   localhost/lev-py39:bullseye       Debian 11, python3 3.9 (shim on an older Python)
#   localhost/lev-busybox:static      a static busybox alone (entries on an image with no libc)
# Images that already exist are kept; --force rebuilds them all. Needs root.
# Usage: images/build-all.sh [--force]
set -eo pipefail
here=$(cd "$(dirname "$0")" && pwd)

say() { printf 'build-all: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

force=()
case ${1:-} in
    --force) force=(--force) ;;
    "") ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (usage: $0 [--force])" ;;
esac

engine=${LEV_ENGINE_CLI:-}
if [ -z "$engine" ]; then
    if command -v podman >/dev/null 2>&1; then engine=podman
    elif command -v docker >/dev/null 2>&1; then engine=docker
    else die "neither podman nor docker is installed (apt-get install podman)"
    fi
fi
export LEV_ENGINE_CLI=$engine
exists() { [ ${#force[@]} -eq 0 ] && "$engine" image inspect "$1" >/dev/null 2>&1; }
# Runs a check inside an image; nothing is left behind.
check() { "$engine" run --rm --network none "$@"; }

start=$(date +%s)
built=()

# One bookworm debootstrap serves three images: the bare minbase is imported first, then
# python3 and then nmap are added to the same root file system with apt-get in a chroot.
# The bullseye image is built meanwhile, in the background (the two overlap well: much of the
# time goes to downloads and to dpkg waiting on the disk).
rootfs=""
py39_pid="" py39_log=""
remove_rootfs() {
    if [ -n "$rootfs" ] && [ -d "$rootfs" ]; then rm -rf --one-file-system "$rootfs"; fi
    rootfs=""
}
cleanup() {
    # On an early exit, let the background build finish (it removes its own files) rather than
    # leave it half done.
    if [ -n "$py39_pid" ]; then wait "$py39_pid" 2>/dev/null || true; fi
    if [ -n "$py39_log" ]; then rm -f "$py39_log"; fi
    remove_rootfs
}
trap cleanup EXIT
need_rootfs() {
    if [ -z "$rootfs" ]; then rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/lev-rootfs-bookworm.XXXXXX"); fi
}

if ! exists localhost/lev-py39:bullseye; then
    py39_log=$(mktemp "${TMPDIR:-/tmp}/lev-build-py39.XXXXXX")
    say "building localhost/lev-py39:bullseye in the background"
    bash "$here/build-base.sh" --force bullseye lev-py39:bullseye python3 >"$py39_log" 2>&1 &
    py39_pid=$!
fi

if ! exists localhost/lev-nopython:bookworm; then
    need_rootfs
    bash "$here/build-base.sh" --force --rootfs "$rootfs" bookworm lev-nopython:bookworm
    if check localhost/lev-nopython:bookworm sh -c 'command -v python3 || ls /usr/bin/python3*' \
        >/dev/null 2>&1; then
        die "localhost/lev-nopython:bookworm has a python3"
    fi
    built+=(lev-nopython:bookworm)
fi

if ! exists localhost/lev-base:bookworm; then
    need_rootfs
    bash "$here/build-base.sh" --force --rootfs "$rootfs" bookworm lev-base:bookworm python3
    built+=(lev-base:bookworm)
fi

if ! exists localhost/lev-nmap:latest; then
    need_rootfs
    bash "$here/build-base.sh" --force --rootfs "$rootfs" bookworm lev-nmap:latest python3 nmap
    check localhost/lev-nmap:latest sh -c 'python3 --version && nmap --version | head -n1' >&2 \
        || die "localhost/lev-nmap:latest lacks python3 or nmap"
    built+=(lev-nmap:latest)
fi
if ! exists localhost/lev-nmap:test; then
    "$engine" tag localhost/lev-nmap:latest localhost/lev-nmap:test
    built+=(lev-nmap:test)
fi
remove_rootfs

if ! exists localhost/lev-busybox:static; then
    bash "$here/build-busybox.sh" --force
    built+=(lev-busybox:static)
fi

if [ -n "$py39_pid" ]; then
    py39_status=0
    wait "$py39_pid" || py39_status=$?
    py39_pid=""
    cat "$py39_log" >&2
    [ "$py39_status" = 0 ] || die "building localhost/lev-py39:bullseye failed"
    check localhost/lev-py39:bullseye python3 -c \
        'import sys; print("python", sys.version.split()[0]); sys.exit(sys.version_info[:2] != (3, 9))' >&2 \
        || die "localhost/lev-py39:bullseye has no python3 3.9"
    built+=(lev-py39:bullseye)
fi

if [ ${#built[@]} -eq 0 ]; then
    say "all images exist (images/build-all.sh --force rebuilds them)"
else
    say "built ${built[*]} in $(( $(date +%s) - start )) s"
fi
