#!/usr/bin/env bash
# The whole test suite, lint included. Installs what the tests need first.
set -eo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh nmap bubblewrap
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
