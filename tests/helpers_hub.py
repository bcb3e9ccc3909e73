"""Helpers for the hub tests (no tests here): wheels built in memory, manifests, uploads,
row counts, a hub served on loopback in a thread."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import stat
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator

import uvicorn
from sqlalchemy import func, select

from levrt.server import Settings, create_app
from levrt.store import Store
from levrt.store.models import File, Namespace, Package, PackageVersion, User, VersionFile

with warnings.catch_warnings():
    # Starlette now prefers httpx2 (Python >= 3.11 only); httpx works the same for these tests.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient  # noqa: F401  (re-exported for the tests)

PASSWORD = "correct horse battery"


def dist_name(package: str) -> str:
    return package.replace(".", "_")


def wheel_filename(package: str, version: str) -> str:
    return f"{dist_name(package)}-{version}-py3-none-any.whl"


def metadata(name: str, version: str, summary: str = "A test tool") -> str:
    return (
        f"Metadata-Version: 2.3\nName: {name}\nVersion: {version}\nSummary: {summary}\n"
        "Requires-Python: >=3.10\nRequires-Dist: levrt\n"
    )


def wheel_members(package: str, version: str, summary: str = "A test tool") -> dict[str, bytes]:
    """What a built hub package wheel holds: the package, its modules, the dist-info."""
    _, user, tool = package.split(".")
    info = f"{dist_name(package)}-{version}.dist-info"
    return {
        f"lev/{user}/{tool}/__init__.py": b"from levrt import annot\n",
        f"lev/{user}/{tool}/scanner.py": b'"""A scanner."""\n\ndef scan(ip): ...\n',
        f"lev/{user}/{tool}/flows.py": b"async def audit(ip): ...\n",
        f"{info}/METADATA": metadata(package, version, summary).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
        f"{info}/RECORD": b"",
    }


def make_wheel(
    package: str = "lev.alice.tool",
    version: str = "1.0.0",
    *,
    members: dict[str, bytes | None] | None = None,
    infos: list[tuple[zipfile.ZipInfo, bytes]] = (),
    summary: str = "A test tool",
) -> bytes:
    """A wheel of ``package``; ``members`` add or replace files (None removes one) and
    ``infos`` append raw entries (odd paths, symbolic links)."""
    files: dict[str, bytes | None] = {**wheel_members(package, version, summary), **(members or {})}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name" is what a test wants
        for path, content in files.items():
            if content is not None:
                # A fixed time: the same arguments give the same bytes, so digests compare.
                archive.writestr(zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0)), content,
                                 compress_type=zipfile.ZIP_DEFLATED)
        for info, content in infos:
            archive.writestr(info, content)
    return buffer.getvalue()


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode bits in external_attr count
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def make_manifest(package: str = "lev.alice.tool", version: str = "1.0.0") -> dict:
    return {
        "levrt": 1,
        "package": package,
        "version": version,
        "exports": [
            {
                "kind": "tool",
                "name": "scanner",
                "qualname": f"{package}.scanner",
                "desc": "Port scanner for networks",
                "doc": "Port scanner for networks.\nHomepage: -",
                "modes": [
                    {"kind": "mode", "name": "scan", "qualname": f"{package}.scanner:scan",
                     "desc": "Find open ports"},
                ],
            },
            {
                "kind": "workflow",
                "name": "audit",
                "qualname": f"{package}.flows:audit",
                "desc": "Audit a LAN",
                "doc": "Audit a LAN.\n```\nawait audit('127.0.0.1')\n```",
                "example": "await audit('127.0.0.1')",
            },
        ],
    }


def upload(client, token: str | None, wheel: bytes, manifest: dict | bytes,
           filename: str | None = None, package: str = "lev.alice.tool", version: str = "1.0.0"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    return client.post(
        "/api/packages/upload",
        headers=headers,
        files={
            "wheel": (filename or wheel_filename(package, version), wheel,
                      "application/octet-stream"),
            "manifest": ("manifest.json", data, "application/json"),
        },
    )


def hub_counts(store: Store) -> dict[str, int]:
    """Rows per table that an upload writes to: a refused upload must leave them all alone."""
    counts = {}
    with store._engine.connect() as conn:
        for model in (User, Namespace, Package, PackageVersion, VersionFile, File):
            table = model.__table__
            counts[table.name] = conn.execute(select(func.count()).select_from(table)).scalar()
    return counts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(store: Store, **settings: object) -> Iterator[str]:
    """A real HTTP server for ``store`` on 127.0.0.1 (in this process); yields its URL."""
    port = free_port()
    app = create_app(Settings(db_url=store.url, port=port, **settings), store=store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test hub did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
