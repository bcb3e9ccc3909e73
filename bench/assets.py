"""How long the assets (levrt.rows.asset_rows: the latest row per key across a user's jobs)
take to compute on a store of many finished scans, what the server's AssetIndex costs for a
page after one more job, and the diff of two jobs.

    .venv/bin/python bench/assets.py [--jobs 3000] [--ports 10]

Each job is one nmap-like port_os run (a host with ``--ports`` ports, its keys declared) and
the job's own summary document, in a fresh SQLite store in a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from levrt import rows
from levrt.store import Store


def fill(store: Store, jobs: int, ports: int, first: int = 0) -> None:
    for number in range(first, first + jobs):
        job_id = store.create_job("server_port", target="lev.x.nmap:server_port",
                                  params={"ip": "10.0.0.0/24"}, owner="alice")
        host = f"10.0.{number % 256 // 16}.{number % 16}"
        found = [{"port": 20 + p + number % 3, "protocol": "tcp", "state": "open",
                  "service": "svc", "product": "p", "version": str(number % 5)}
                 for p in range(ports)]
        store.create_run(job_id, 0, name="port_os.entry", image="nmap", schema="s/nmap.port_os@1",
                         coll="s/nmap.port_os@1", spec={"keys": ["host", "port", "protocol"]})
        store.finish_run(job_id, 0, status="done", exit_code=0, coll="s/nmap.port_os@1",
                         data={"host": host, "ports": found, "os": ["Linux"]})
        store.merge_document("_", job_id, None, {"open_ports": found[:2]})
        store.finish_job(job_id, "done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--ports", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, \
            Store(f"sqlite:///{Path(folder) / 'bench.db'}") as store:
        start = time.perf_counter()
        fill(store, args.jobs, args.ports)
        print(f"filled {args.jobs} jobs in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        found = rows.asset_rows(store, "alice")
        took = time.perf_counter() - start
        print(f"assets: {len(found)} rows from {args.jobs} jobs in {took * 1000:.0f} ms")
        index = rows.AssetIndex("alice")
        start = time.perf_counter()
        index.update(store)
        print(f"the server's index, first page: {(time.perf_counter() - start) * 1000:.0f} ms")
        fill(store, 1, args.ports, args.jobs)
        start = time.perf_counter()
        index.update(store)
        print(f"  a page after one more job: {(time.perf_counter() - start) * 1000:.0f} ms")
        a, b = (job["id"] for job in store.list_jobs(limit=2))
        start = time.perf_counter()
        rows.diff(rows.job_tables(store, a), rows.job_tables(store, b))
        print(f"diff of two jobs: {(time.perf_counter() - start) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
