#!/usr/bin/env bash
# The whole test suite, lint included. Installs what the tests need first.
set -eo pipefail
cd "$(dirname "$0")/.."
# chromium: Debian's browser, which the Playwright tests (tests/test_browser.py) drive.
# postgresql: the server programs; the tests start a private cluster of their own
# (tests/helpers_pg.py) and never use or need the system's.
. scripts/setup.sh nmap bubblewrap chromium postgresql
# The container engine (podman's Docker API service) and the local test images; exports
# DOCKER_HOST. Skipped, with a note, where it cannot be set up; fatal under CI=true.
. scripts/engine.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
