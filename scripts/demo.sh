#!/usr/bin/env bash
# The main job: the seed's workflow `server_port` against 127.0.0.1 on the embedded
# defaults (process executor, SQLite store), printing the open ports it finds.
set -eo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh nmap bubblewrap
exec .venv/bin/lev run examples/lev-hub/szczecin.nmap_python:server_port --ip 127.0.0.1 "$@"
