#!/usr/bin/env bash
# A local demo cluster on this machine: a Temporal dev server, lev serve, and two agents
# (devices one and two, both in pool demo), each with a LEV_HOME of its own under DIR
# (default: a new temporary folder). Runs until Ctrl-C, then stops everything it started.
# With --netns (root), each agent runs in a network namespace of its own, joined to the host
# by a veth pair in 10.213.201.0/30 and 10.213.202.0/30: the agents reach the server and
# Temporal (through scripts/tcp_relay.py) at 10.213.201.1 and nothing else of the host.
# Usage: scripts/cluster.sh [--netns] [DIR]
#        (ports: LEV_DEMO_PORT, default 8765; LEV_DEMO_TEMPORAL_PORT, default 7233)
set -eo pipefail
cd "$(dirname "$0")/.."
netns=""
if [ "$1" = --netns ]; then netns=1; shift; fi
. scripts/setup.sh nmap bubblewrap ${netns:+iproute2}

dir=${1:-$(mktemp -d -t lev-cluster-XXXXXX)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
port=${LEV_DEMO_PORT:-8765}
temporal_port=${LEV_DEMO_TEMPORAL_PORT:-7233}
host=127.0.0.1
lev=$PWD/.venv/bin/lev
pids=()
made_netns=()

stop() {
    trap - INT TERM EXIT
    echo "stopping the cluster" >&2
    # Agents first, then the server, then Temporal: each ends cleanly on SIGTERM.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    for name in "${made_netns[@]}"; do
        ip link del "lvd-$name" 2>/dev/null || true
        ip netns del "lev-demo-$name" 2>/dev/null || true
    done
}
trap stop INT TERM EXIT

wait_for() {  # wait_for WHAT COMMAND...: until COMMAND succeeds, for 60 s at most
    local what=$1; shift
    for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "cluster: $what did not come up; see the logs in $dir" >&2
    return 1
}

if [ -n "$netns" ]; then
    if ip -4 -o addr show | grep -q ' 10\.213\.20[12]\.'; then
        echo "cluster: 10.213.201.0/30 or 10.213.202.0/30 is in use here" \
            "(another cluster.sh --netns?)" >&2
        exit 1
    fi
    host=10.213.201.1
    subnet=201
    for name in one two; do
        ip netns add "lev-demo-$name"
        made_netns+=("$name")
        ip link add "lvd-$name" type veth peer name eth0 netns "lev-demo-$name"
        ip addr add "10.213.$subnet.1/30" dev "lvd-$name"
        ip link set "lvd-$name" up
        ip -n "lev-demo-$name" link set lo up
        ip -n "lev-demo-$name" addr add "10.213.$subnet.2/30" dev eth0
        ip -n "lev-demo-$name" link set eth0 up
        [ "$subnet" = 201 ] || ip -n "lev-demo-$name" route add "$host/32" via "10.213.$subnet.1"
        subnet=$((subnet + 1))
    done
fi
server=http://$host:$port

echo "cluster: Temporal dev server on 127.0.0.1:$temporal_port" >&2
.venv/bin/temporal server start-dev --headless --ip 127.0.0.1 --port "$temporal_port" \
    --db-filename "$dir/temporal.db" --log-level error >"$dir/temporal.log" 2>&1 &
pids+=($!)
wait_for "Temporal" .venv/bin/temporal operator namespace describe --namespace default \
    --address "127.0.0.1:$temporal_port"
temporal=127.0.0.1:$temporal_port
if [ -n "$netns" ]; then
    .venv/bin/python scripts/tcp_relay.py "$host" "$temporal_port" 127.0.0.1 "$temporal_port" \
        >/dev/null &
    pids+=($!)
    temporal=$host:$temporal_port
fi

password=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')
if [ ! -f "$dir/server/levrt.db" ]; then
    echo "$password" | LEV_HOME=$dir/server "$lev" user add demo --password-stdin >/dev/null
else
    password="(unchanged: see the first run's output)"
fi
echo "cluster: lev serve at $server" >&2
LEV_HOME=$dir/server "$lev" serve --host "$host" --port "$port" --temporal "$temporal" \
    >"$dir/server.log" 2>&1 &
pids+=($!)
wait_for "lev serve" .venv/bin/python -c "import urllib.request as u; u.urlopen('$server/health')"

if [ ! -f "$dir/one/device.json" ]; then
    echo "$password" | LEV_HOME=$dir/user "$lev" login "$server" --user demo --password-stdin
    for name in one two; do
        LEV_HOME=$dir/user "$lev" device add "$name" --pool demo >"$dir/$name.enrol" 2>/dev/null
    done
fi
for name in one two; do
    enrol=()
    if [ -s "$dir/$name.enrol" ]; then
        enrol=(--enrol "$(awk '{print $NF}' "$dir/$name.enrol")")
        rm "$dir/$name.enrol"
    fi
    in_netns=()
    [ -z "$netns" ] || in_netns=(ip netns exec "lev-demo-$name")
    LEV_HOME=$dir/$name "${in_netns[@]}" "$lev" agent --server "$server" --slots 4 \
        "${enrol[@]}" >"$dir/$name.log" 2>&1 &
    pids+=($!)
done
agents_online() {
    [ "$(LEV_HOME=$dir/user "$lev" device list | awk '$2 == "agent" && $3 == "online"' | wc -l)" = 2 ]
}
wait_for "the agents" agents_online

LEV_HOME=$dir/user "$lev" device list
cat >&2 <<EOF

cluster: up. Web pages at $server/ (user demo, password $password), devices at
$server/devices; for the CLI: export LEV_HOME=$dir/user. Logs and state in $dir.
Ctrl-C stops it; scripts/cluster.sh $dir starts it again on the same state.
EOF
wait "${pids[0]}"
