#!/usr/bin/env bash
# The quick start's demo (examples/demo.py): an HTTP server and an SSH-like listener on
# 127.0.0.1 for the demo's duration, the seed's workflow `server_port` on them on the embedded
# defaults (process executor, SQLite store), again with one more service, then the rows found
# and what changed.
set -eo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh nmap bubblewrap
exec .venv/bin/python examples/demo.py "$@"
