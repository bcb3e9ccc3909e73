#!/usr/bin/env bash
# Builds one Debian tool image locally, with no image registry: debootstrap (minbase) from the
# Debian mirror, then import the root file system into the container engine as localhost/TAG.
#
# Usage: images/build-base.sh [--force] [--rootfs DIR] SUITE TAG [PACKAGE ...]
#   SUITE      Debian suite: bookworm, bullseye, ...
#   TAG        image name and tag, without "localhost/": lev-nmap:latest
#   PACKAGE    Debian packages on top of minbase (none: a bare minbase, no python3)
#   --force    build even when localhost/TAG already exists
#   --rootfs   keep the root file system in DIR and reuse it: when DIR already holds one
#              (of the same suite), only the missing packages are added with apt-get in a
#              chroot, which is much faster than another debootstrap. DIR is not removed.
#
# Environment: LEV_DEBIAN_MIRROR (default: the Debian URI in the apt sources, else
# http://deb.debian.org/debian), LEV_ENGINE_CLI (podman or docker; default: whichever exists,
# podman first). Needs root (debootstrap, chroot).
set -eo pipefail

say() { printf 'build-base: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

force=""
rootfs_keep=""
while [ $# -gt 0 ]; do
    case $1 in
        --force) force=1; shift ;;
        --rootfs) [ -n "$2" ] || die "--rootfs needs a directory"; rootfs_keep=$2; shift 2 ;;
        --rootfs=*) rootfs_keep=${1#--rootfs=}; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        --) shift; break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || die "usage: $0 [--force] [--rootfs DIR] SUITE TAG [PACKAGE ...]"
suite=$1 tag=${2#localhost/}; shift 2
packages=("$@")
image=localhost/$tag
case $tag in *:*) ;; *) die "TAG must be NAME:TAG, got '$tag'" ;; esac

# The engine CLI: podman talks to its local storage (the same one `podman system service` serves);
# docker talks to whatever DOCKER_HOST points at.
engine=${LEV_ENGINE_CLI:-}
if [ -z "$engine" ]; then
    if command -v podman >/dev/null 2>&1; then engine=podman
    elif command -v docker >/dev/null 2>&1; then engine=docker
    else die "neither podman nor docker is installed (apt-get install podman)"
    fi
fi
image_exists() { "$engine" image inspect "$1" >/dev/null 2>&1; }

if [ -z "$force" ] && image_exists "$image"; then
    say "$image exists (use --force to rebuild)"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root: run 'sudo $0 ...'"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing (apt-get install debootstrap)"

debian_mirror() {
    if [ -n "$LEV_DEBIAN_MIRROR" ]; then echo "$LEV_DEBIAN_MIRROR"; return; fi
    local uri
    # deb822 "URIs:" lines first, then one-line "deb ..." entries; the first plain Debian archive.
    uri=$( { grep -hs '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources || true
             grep -hs '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list || true
           } | grep -oE 'https?://[^[:space:]]+' | grep -E '/debian/?$' | head -n1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}
mirror=$(debian_mirror)

start=$(date +%s)
created_dir=""
cleanup() {
    # --one-file-system: never descend into anything mounted below the root file system.
    if [ -n "$created_dir" ] && [ -d "$created_dir" ]; then rm -rf --one-file-system "$created_dir"; fi
}
trap cleanup EXIT

if [ -n "$rootfs_keep" ]; then
    dir=$rootfs_keep
else
    dir=$(mktemp -d "${TMPDIR:-/var/tmp}/lev-rootfs.XXXXXX")
    created_dir=$dir
fi

# Files debootstrap copies from the host; the engine provides its own at run time.
host_files=(etc/resolv.conf etc/hostname)

if [ -x "$dir/usr/bin/apt-get" ] && [ -f "$dir/etc/os-release" ] && [ ! -d "$dir/debootstrap" ]; then
    have_suite=$(. "$dir/etc/os-release" && echo "${VERSION_CODENAME:-}")
    [ "$have_suite" = "$suite" ] || die "$dir holds a '$have_suite' root file system, not '$suite'"
    missing=()
    for pkg in "${packages[@]}"; do
        chroot "$dir" dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "adding ${missing[*]} to the $suite root file system in $dir"
        cp /etc/resolv.conf "$dir/etc/resolv.conf"
        # No /proc, /dev/pts or _apt sandbox in a plain chroot: tell apt not to use them.
        apt=(apt-get -qq -o APT::Sandbox::User=root -o Dpkg::Use-Pty=0)
        chroot "$dir" env DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >/dev/null
        chroot "$dir" env DEBIAN_FRONTEND=noninteractive \
            "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null 2>"$dir.apt.log" \
            || { cat "$dir.apt.log" >&2; rm -f "$dir.apt.log"; die "apt-get install ${missing[*]} failed"; }
        grep -v -e '^debconf: delaying package configuration' "$dir.apt.log" >&2 || true
        rm -f "$dir.apt.log"
    fi
else
    [ -z "$(ls -A "$dir" 2>/dev/null)" ] || die "$dir is neither empty nor a finished root file system"
    include=()
    if [ ${#packages[@]} -gt 0 ]; then
        include=("--include=$(IFS=,; echo "${packages[*]}")")
    fi
    say "debootstrap $suite (minbase${packages:+ + ${packages[*]}}) from $mirror into $dir"
    log=$dir.debootstrap.log
    if ! debootstrap --variant=minbase "${include[@]}" "$suite" "$dir" "$mirror" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "debootstrap failed (whole log: $log)"
    fi
    rm -f "$log"
fi

# Keep the image small: package lists and downloaded packages are not needed at run time
# (a Dockerfile on top runs `apt-get update` first).
rm -rf "${dir:?}"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin \
       "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/archives/partial/*
for f in "${host_files[@]}"; do rm -f "$dir/$f" && : >"$dir/$f"; done

say "importing $image with $engine"
import_log=$(mktemp)
if ! tar --numeric-owner --xattrs -C "$dir" -c . | "$engine" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["/bin/bash"]' \
        - "$image" >"$import_log" 2>&1; then
    cat "$import_log" >&2; rm -f "$import_log"
    die "$engine import failed"
fi
rm -f "$import_log"

say "built $image in $(( $(date +%s) - start )) s"
