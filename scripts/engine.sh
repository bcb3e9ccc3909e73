#!/usr/bin/env bash
# Makes a Docker-API-compatible container engine (Podman's API service) and the test images
# available for the container tests, then exports DOCKER_HOST for them.
# Sourced by scripts/test.sh; can also be run alone: bash scripts/engine.sh
#
# Sets the engine up whenever it can (root or password-less sudo), as the README says;
# LEV_ENGINE=0 opts out (not under CI=true). Without root or sudo, an engine someone already
# set up is used when it answers with all the test images; else the container tests are skipped. Under CI=true every failure here is fatal; elsewhere it
# is a warning and the container tests skip.
#
# Steps, each skipped when already done (when all is done, the script takes well under a second):
#   1. apt-get install podman runc debootstrap (and iptables, aardvark-dns for networks)
#   2. /etc/containers/containers.conf: runc, cgroupfs, ulimits within the sandbox's limits
#      (crun fails on hybrid cgroups); an existing file is backed up first
#   3. `podman system service` answering on /run/podman.sock (log: /tmp/levrt-podman-service.log)
#   4. export DOCKER_HOST=unix:///run/podman.sock
#   5. images/build-all.sh: the localhost/lev-* test images (no registry needed; 1.5 min)
# DOCKER_HOST already set to another engine: that one is used as it is. LEV_ENGINE_SOCK: another
# socket path (to try this script out next to a running service).
set -eo pipefail

lev_engine_sock=${LEV_ENGINE_SOCK:-/run/podman.sock}
lev_engine_host=unix://$lev_engine_sock
lev_engine_log=/tmp/levrt-podman-service.log
lev_engine_images=(lev-nopython:bookworm lev-base:bookworm lev-nmap:latest lev-nmap:test
                   lev-py39:bullseye lev-busybox:static)
lev_engine_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

lev_engine_say() { printf 'levrt engine: %s\n' "$*" >&2; }

lev_engine_ci() {
    case ${CI:-} in ""|0|false|False|FALSE|no|No|NO) return 1 ;; *) return 0 ;; esac
}

# Runs a command as root: directly, or through password-less sudo.
lev_engine_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
    else return 1
    fi
}
lev_engine_can_root() {
    [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

# The body of GET PATH on the engine's socket; fails when nothing answers or on an HTTP error.
lev_engine_get() {
    if command -v curl >/dev/null 2>&1; then
        curl -sf --max-time 5 --unix-socket "$lev_engine_sock" "http://d$1" 2>/dev/null
        return
    fi
    python3 - "$lev_engine_sock" "$1" <<'EOF' 2>/dev/null
import http.client, socket, sys
class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(sys.argv[1])
conn = Conn("d", timeout=5)
conn.request("GET", sys.argv[2])
resp = conn.getresponse()
sys.stdout.write(resp.read().decode())
sys.exit(resp.status >= 400)
EOF
}
lev_engine_ping() { [ "$(lev_engine_get /_ping)" = OK ]; }

# The test images missing from the engine: one request, through the API, so it also works for a
# user who reaches root's engine through the socket.
lev_engine_missing_images() {
    local img list
    list=$(lev_engine_get /v1.41/images/json) || { printf '%s\n' "${lev_engine_images[@]}"; return; }
    for img in "${lev_engine_images[@]}"; do
        case $list in *"\"localhost/$img\""*) ;; *) echo "$img" ;; esac
    done
}

lev_engine_packages() {
    local pkg missing=() installed
    local wanted=(podman runc debootstrap iptables aardvark-dns)
    # One dpkg-query for all: lines "podman=install ok installed".
    installed=$'\n'$(dpkg-query -W -f='${Package}=${Status}\n' "${wanted[@]}" 2>/dev/null || true)
    for pkg in "${wanted[@]}"; do
        case $installed in *$'\n'"$pkg=install ok installed"*) ;; *) missing+=("$pkg") ;; esac
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    lev_engine_say "installing ${missing[*]} with apt-get"
    lev_engine_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || {
        lev_engine_say "apt-get update failed"; return 1; }
    lev_engine_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
        >/dev/null || { lev_engine_say "apt-get install ${missing[*]} failed"; return 1; }
}

lev_engine_conf_written=""
lev_engine_config() {
    local conf=/etc/containers/containers.conf backup
    if grep -qsE '^[[:space:]]*runtime[[:space:]]*=[[:space:]]*"runc"' "$conf"; then return 0; fi
    if [ -e "$conf" ]; then
        backup=$conf.levrt-backup.$(date +%Y%m%d-%H%M%S)
        lev_engine_root cp -p "$conf" "$backup" || { lev_engine_say "cannot back up $conf"; return 1; }
        lev_engine_say "replacing $conf (the old one is in $backup)"
    else
        lev_engine_say "writing $conf"
    fi
    # crun fails on these machines' hybrid cgroups; the default ulimits exceed the hard limits.
    lev_engine_root mkdir -p /etc/containers &&
    printf '%s\n' \
        '# Written by levrt scripts/engine.sh: runc (crun fails on hybrid cgroups), lowered ulimits.' \
        '[containers]' \
        'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]' \
        '' \
        '[engine]' \
        'cgroup_manager = "cgroupfs"' \
        'runtime = "runc"' | lev_engine_root tee "$conf" >/dev/null || {
        lev_engine_say "cannot write $conf"; return 1; }
    lev_engine_conf_written=1
}

lev_engine_service() {
    local i
    if lev_engine_ping; then
        if [ -n "$lev_engine_conf_written" ]; then
            lev_engine_say "warning: the API service on $lev_engine_sock started before" \
                "containers.conf was written; restart it to apply the new settings"
        fi
        return 0
    fi
    # A service may be starting right now (another run of this script): give it a moment.
    if pgrep -f "podman system service .*$lev_engine_host" >/dev/null 2>&1; then
        lev_engine_say "waiting for the running podman API service to answer"
    else
        if [ -S "$lev_engine_sock" ]; then lev_engine_root rm -f "$lev_engine_sock"; fi
        lev_engine_say "starting podman system service on $lev_engine_sock (log: $lev_engine_log)"
        # setsid + nohup: the service outlives this shell and the test run, so the next run only
        # has to ping it. Started from / : its containers' conmon fails ("Failed to get
        # working directory") once the directory it was started in is deleted, such as the
        # clone a CI run started it from.
        # The subshell's own descriptors go to the log first, so that nothing left running
        # holds this script's output open.
        (cd / && exec >>"$lev_engine_log" 2>&1 </dev/null &&
            lev_engine_root setsid nohup podman system service --time=0 "$lev_engine_host" &)
    fi
    for i in $(seq 1 80); do
        if lev_engine_ping; then break; fi
        sleep 0.25
    done
    if ! lev_engine_ping; then
        # A user reaching root's engine through sudo cannot open root's socket (mode 0600).
        if [ "$(id -u)" != 0 ] && lev_engine_root test -S "$lev_engine_sock"; then
            lev_engine_root chown "$(id -u):$(id -g)" "$lev_engine_sock" || true
        fi
    fi
    if ! lev_engine_ping; then
        lev_engine_say "the podman API service does not answer on $lev_engine_sock after 20 s;" \
            "last lines of $lev_engine_log:"
        tail -n 5 "$lev_engine_log" >&2 2>/dev/null || true
        return 1
    fi
}

lev_engine_main() {
    local missing
    if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "$lev_engine_host" ]; then
        lev_engine_say "DOCKER_HOST=$DOCKER_HOST is set: using that engine as it is" \
            "(LEV_ENGINE_CLI=docker images/build-all.sh builds the test images)"
        return 0
    fi
    if ! lev_engine_ci; then
        case ${LEV_ENGINE:-} in 0|false|no) return 0 ;; esac
    fi

    if ! lev_engine_can_root; then
        # Someone may have set it all up already, with this user allowed on the socket.
        if lev_engine_ping && [ -z "$(lev_engine_missing_images)" ]; then
            export DOCKER_HOST=$lev_engine_host
            return 0
        fi
        lev_engine_say "not root and no password-less sudo: the container tests will be skipped" \
            "(run 'sudo bash scripts/engine.sh' once, or the tests as root, to enable them)"
        return 2
    fi

    lev_engine_packages || return 1
    lev_engine_config || return 1
    lev_engine_service || return 1
    export DOCKER_HOST=$lev_engine_host

    missing=$(lev_engine_missing_images)
    if [ -n "$missing" ]; then
        lev_engine_say "building the missing test images:" $missing
        lev_engine_root bash "$lev_engine_dir/images/build-all.sh" || {
            lev_engine_say "building the test images failed"; return 1; }
        missing=$(lev_engine_missing_images)
        if [ -n "$missing" ]; then
            lev_engine_say "still missing after images/build-all.sh:" $missing
            return 1
        fi
    fi
}

lev_engine_rc=0
lev_engine_main || lev_engine_rc=$?
# Status 2: skipped, and already said so.
if [ "$lev_engine_rc" != 0 ]; then
    if lev_engine_ci; then
        lev_engine_say "CI is set: the container engine is required, stopping"
    else
        [ "$lev_engine_rc" = 2 ] ||
            lev_engine_say "continuing without it: the container tests will be skipped"
        lev_engine_rc=0
    fi
fi
# Sourced: hand the status to the caller (whose set -e then stops under CI); run: exit with it.
if (return 0 2>/dev/null); then return "$lev_engine_rc"; else exit "$lev_engine_rc"; fi
