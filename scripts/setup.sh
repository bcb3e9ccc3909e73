# Sourced by demo.sh and test.sh: makes .venv with levrt installed and, where this
# user may install system packages, the Debian tools the caller names.
# Usage: . scripts/setup.sh [debian-package ...]

lev_say() { printf 'levrt setup: %s\n' "$*" >&2; }

lev_root_cmd() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
    else return 1
    fi
}

lev_apt_updated=""
lev_apt_install() {
    if [ -z "$lev_apt_updated" ]; then
        lev_root_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        lev_apt_updated=1
    fi
    lev_root_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

lev_setup() {
    local python=${PYTHON:-python3} missing=() pkg bin
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
        lev_say "levrt needs Python 3.10 or newer as '$python' (set PYTHON=/path/to/python3)"
        return 1
    fi
    for pkg in "$@"; do
        case $pkg in
            bubblewrap) bin=bwrap ;;
            iproute2) bin=ip ;;
            # Debian keeps the server's programs off PATH, in /usr/lib/postgresql/<N>/bin.
            postgresql) compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && continue
                        bin=initdb ;;
            *) bin=$pkg ;;
        esac
        command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
        missing+=("python3-venv")
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        lev_say "installing ${missing[*]} with apt-get"
        if ! lev_apt_install "${missing[@]}"; then
            lev_say "cannot install ${missing[*]} here: run 'sudo apt-get install ${missing[*]}' and try again"
            return 1
        fi
    fi
    if [ ! -x .venv/bin/python ]; then
        lev_say "creating .venv"
        "$python" -m venv .venv || return 1
    fi
    # Reinstall only when the project's requirements changed since the last install.
    local stamp=.venv/.levrt-installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        lev_say "installing levrt and its test tools into .venv"
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null || return 1
        .venv/bin/python -m pip install -q -e '.[test]' || return 1
        touch "$stamp"
    fi
}

lev_setup "$@"
