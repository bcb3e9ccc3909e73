"""Runs in containers through the Docker Engine API (Docker, or Podman's service).

Each run is one container labelled with its job and run; the shim and the
payload are copied in before it starts, together with the run's ``files``.
Stdout (the result channel) and stderr (the log) are read from the engine's log
while it runs and wholly after it exits (:class:`_Output`), and the channel's
numbered messages are checked at the end. The container is removed however the
run ends; containers left by a driver that died are removed when the next
executor starts.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import datetime
import functools
import hashlib
import io
import os
import re
import struct
import sys
import tarfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .._config import Settings, load_settings, tomllib
from .._debug import SANDBOX_DIR as DEBUG_DIR
from .._debug import SOCKET_NAME as DEBUG_SOCKET
from .._driver import driver_gone, driver_id
from ..shim import BUNDLE_PATH, SHIM_PATH
from ..shim.entry import dumps
from .base import (
    ChannelReader,
    Executor,
    ExecutorError,
    LineSplitter,
    RunHandle,
    RunObserver,
    RunSpec,
    stdout_reader,
    wait_for_ports,
)

LABEL = "io.levrt"
SHIM_DIR = "/.lev"
# What an engine is said to hold (a device's facts, the devices page): at most this many
# image references.
MAX_IMAGES = 1000
#: seconds between reads of a running container's output: at first, and at most
POLL_FIRST = 0.25
POLL_MAX = 2.0
#: seconds the engine check waits for an engine that is there but busy
ENGINE_PATIENCE = 30.0
#: the Docker API version asked for (Docker 20.10 and Podman 4 speak it)
API_VERSION = "1.41"
#: where levrt's own Python is mounted in images that have none, and the image it is taken from
PYTHON_MOUNT = "/lev-py"
PYTHON_IMAGE = "localhost/lev-base:bookworm"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: payloads up to this size travel in an environment variable (Linux allows 128 KiB per string)
INLINE_PAYLOAD = 100_000
_T = TypeVar("_T")


def _docker() -> Any:
    try:
        import docker
    except ImportError:  # pragma: no cover - docker is a dependency
        raise ExecutorError("the docker executor needs the 'docker' package: "
                            "pip install docker") from None
    return docker


@functools.cache
def _shim_source() -> str:
    return SHIM_PATH.read_text(encoding="utf-8")


def engine_facts(engine: str) -> dict[str, Any]:
    """What the container engine at ``engine`` (a Docker API URL) is and holds:
    ``engine_version`` (``"Podman Engine 5.4.2"``, empty when it does not say) and its tagged
    ``images`` (at most :data:`MAX_IMAGES`; none when it does not answer). Blocking."""
    import docker

    try:
        client = docker.DockerClient(base_url=engine, timeout=10)
        try:
            about = client.version()
            tags = {tag for image in client.images.list() for tag in image.tags}
        finally:
            client.close()
    except docker.errors.DockerException:
        return {"engine_version": "", "images": []}
    names = [part.get("Name", "") for part in about.get("Components") or []]
    product = next((name for name in names if name), "Docker Engine")
    version = f"{product} {about.get('Version', '')}".strip()
    return {"engine_version": version, "images": sorted(tags)[:MAX_IMAGES]}


def engine_url(patience: float = ENGINE_PATIENCE) -> str | None:
    """The Docker API endpoint that answers here: ``DOCKER_HOST`` or a usual socket."""
    return probe_engines(patience)[0]


def probe_engines(patience: float = ENGINE_PATIENCE) -> tuple[str | None, list[str]]:
    """The first endpoint that answers a ping, and what was tried on the way.

    A socket that is missing or refuses connections is passed over at once; one that
    accepts but does not answer (an engine busy building images) is asked again, with
    growing timeouts, for up to ``patience`` seconds, saying so on stderr after a few.
    """
    candidates = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else [
        "unix:///var/run/docker.sock", "unix:///run/podman/podman.sock",
        "unix:///run/podman.sock"]
    tried: list[str] = []
    for url in candidates:
        if url.startswith("unix://") and not os.path.exists(url[len("unix://"):]):
            tried.append(f"{url}: no such socket")
            continue
        began = time.monotonic()
        attempts, timeout, said = 0, 3.0, False
        while True:
            attempts += 1
            try:
                _ping(url, timeout)
                return url, tried
            except Exception as exc:  # noqa: BLE001 - any failure means "not now"
                waited = time.monotonic() - began
                if _refused(exc) or patience - waited < 1:
                    why = "refused the connection" if _refused(exc) else \
                        f"no answer ({type(exc).__name__})"
                    tried.append(f"{url}: {why}, {attempts} attempt"
                                 f"{'s' if attempts > 1 else ''} in {waited:.0f}s")
                    break
                if not said and waited >= 3:
                    said = True
                    print(f"levrt: the container engine at {url} is slow to answer; waiting "
                          f"up to {patience:.0f}s", file=sys.stderr, flush=True)
                time.sleep(min(1.0, 0.2 * attempts))
                # The last attempt gets what is left of the patience, at least a second.
                left = patience - (time.monotonic() - began)
                timeout = max(1.0, min(timeout * 1.5, 10.0, left))
    return None, tried


def _ping(url: str, timeout: float) -> None:
    # A fixed API version: "auto" would cost another round trip to the engine.
    client = _docker().DockerClient(base_url=url, timeout=timeout, version=API_VERSION)
    try:
        if not client.ping():
            raise ConnectionError(f"{url} answered the ping with something else than OK")
    finally:
        client.close()


def _refused(exc: BaseException) -> bool:
    """Nothing listens there: waiting would not help."""
    while exc is not None:
        if isinstance(exc, (ConnectionRefusedError, FileNotFoundError)):
            return True
        exc = exc.__cause__ or exc.__context__ or (exc.args[0] if exc.args and isinstance(
            exc.args[0], BaseException) else None)
    return False


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        made: set[str] = set()
        for path, content in sorted(files.items()):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                directory = "/".join(parts[:i])
                if directory not in made:
                    made.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode, info.mtime = len(content), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class DockerExecutor(Executor):
    name = "docker"

    def __init__(self, base_url: str | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        tried: list[str] = []
        self.base_url = base_url
        if base_url is None:
            self.base_url, tried = probe_engines()
        if self.base_url is None:
            raise ExecutorError(
                f"no Docker API answers here (tried {'; '.join(tried)}): start Docker or "
                "`podman system service --time=0 unix:///run/podman.sock`, or use the "
                "process executor"
            )
        self.client = _docker().DockerClient(base_url=self.base_url, timeout=120,
                                              version=API_VERSION)
        # Every run blocks a thread on its wait, and one more while its output is read: a
        # pool sized for wide fan-outs, so that runs never queue behind each other's waits.
        self._pool = ThreadPoolExecutor(max_workers=256, thread_name_prefix="lev-docker")
        self._images: set[str] = set()  # found in the engine already
        self._python: dict[str, bool] = {}  # whether an image has python3 on its PATH
        self._bundle: asyncio.Future[str] | None = None
        self._deferred: set[asyncio.Future[None]] = set()
        self._reaped = False
        # The containers this executor made and has not removed, by id.
        self._live: dict[str, Any] = {}

    def describe(self) -> str:
        return f"docker ({self.base_url})"

    async def call(self, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: func(*args, **kwargs))

    def _image(self, spec: RunSpec) -> str:
        image = self.settings.image(spec.image)
        if image in self._images:
            return image
        try:
            self.client.images.get(image)
            self._images.add(image)
        except _docker().errors.ImageNotFound:
            alias = f" (from {spec.image})" if image != spec.image else ""
            raise ExecutorError(
                f"image {image}{alias} is not in the engine and no registry is used: build it "
                "(`lev image build PACKAGE_DIR`, or images/build-all.sh for the examples) or "
                "map the reference with LEV_IMAGE_ALIASES / image_aliases in config.toml"
            ) from None
        return image

    async def start(self, spec: RunSpec, observer: RunObserver) -> RunHandle:
        if not self._reaped:
            self._reaped = True
            await self.call(reap_leftovers, self.client)
        sidecars: list[DockerHandle] = []
        try:
            hosts: dict[str, str] = {}
            for name, service in spec.services.items():
                side = await self._create(service, _Prefixed(observer, name), f"-{name}")
                sidecars.append(side)
                await side.begin()
                hosts[name] = await side.address()
            for alias, target in spec.links.items():
                hosts[alias] = await self._address_of(target)
            handle = await self._create(spec, observer, "", extra_hosts=hosts)
            handle.sidecars = sidecars
            sidecars = []
            try:
                await handle.begin()
            except BaseException:
                await handle.kill()
                raise
        except BaseException:
            for side in sidecars:
                await side.kill()
            raise
        if spec.ports:
            await handle.wait_for_ports(spec.ports)
        return handle

    async def _address_of(self, container_name: str) -> str:
        try:
            container = await self.call(self.client.containers.get, container_name)
        except _docker().errors.NotFound:
            raise ExecutorError(f"links: no running container {container_name!r}; link to "
                                "the .host of a task that is still running") from None
        return _ip(container) or "127.0.0.1"

    async def _create(self, spec: RunSpec, observer: RunObserver, suffix: str, *,
                      extra_hosts: dict[str, str] | None = None) -> DockerHandle:
        image = await self.call(self._image, spec)
        name = f"lev-{spec.job_id}-{spec.run_id}{suffix}"
        files = dict(spec.files)
        command = spec.cmd
        environment = spec.env
        python = ["python3"]
        volumes: dict[str, dict[str, str]] = {}
        if spec.payload is not None and not await self._has_python(image):
            volume, version = await self._bundled_python()
            home = f"{PYTHON_MOUNT}/{version}"
            python = [f"{home}/ld.so", "--library-path", f"{home}/so", f"{home}/bin/python3"]
            volumes[volume] = {"bind": PYTHON_MOUNT, "mode": "ro"}
            environment = {**environment, "PYTHONHOME": home, "PYTHONDONTWRITEBYTECODE": "1"}
        if spec.payload is not None:
            payload = dumps(spec.payload)
            if files or len(payload) > INLINE_PAYLOAD:
                files[f"{SHIM_DIR}/shim.py"] = SHIM_PATH.read_bytes()
                files[f"{SHIM_DIR}/payload"] = payload.encode()
                command = [*python, "-u", f"{SHIM_DIR}/shim.py", f"{SHIM_DIR}/payload"]
            else:
                # Small and with no files to copy: shim and payload ride in the command and
                # the environment, which saves the engine an archive upload per run.
                command = [*python, "-u", "-c", _shim_source()]
                environment = {**environment, "LEV_PAYLOAD": payload}
        options: dict[str, Any] = {
            "name": name,
            "command": command,
            "environment": environment,
            "labels": {f"{LABEL}.managed": "1", f"{LABEL}.job": spec.job_id,
                       f"{LABEL}.run": str(spec.run_id), f"{LABEL}.driver": driver_id()},
            "detach": True,
            # An init process as PID 1 passes signals on: a tool as PID 1 would ignore SIGTERM.
            "init": True,
        }
        # Runs and sidecars find each other through /etc/hosts entries (extra_hosts) on the
        # engine's default network: no per-job network or DNS to set up for every job.
        if spec.host_network:
            options["network_mode"] = "host"
        else:
            options["hostname"] = name
        if extra_hosts:
            options["extra_hosts"] = extra_hosts
        if self.debug_dir is not None and spec.payload is not None:
            volumes[self.debug_dir] = {"bind": DEBUG_DIR, "mode": "rw"}
            options["environment"] = {**options["environment"],
                                      "LEV_DEBUG": f"{DEBUG_DIR}/{DEBUG_SOCKET}"}
        if volumes:
            options["volumes"] = volumes
        if self.settings.memory:
            options["mem_limit"] = self.settings.memory
        if self.settings.cpus:
            options["nano_cpus"] = int(self.settings.cpus * 1e9)
        errors = _docker().errors
        creating = asyncio.ensure_future(self.call(self.client.containers.create, image,
                                                   **options))
        try:
            container = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # The engine creates it all the same: remove it once it exists.
            with contextlib.suppress(Exception):
                await self.call((await creating).remove, force=True)
            raise
        except errors.APIError as exc:
            raise ExecutorError(f"run {spec.name!r}: the engine refused the container: "
                                f"{exc.explanation or exc}") from None
        self._live[container.id] = container
        handle = DockerHandle(self, container, spec, observer, image)
        try:
            if files:
                await self.call(container.put_archive, "/", _tar(files))
        except BaseException:
            await handle.kill()
            raise
        return handle

    async def _has_python(self, image: str) -> bool:
        """Whether ``image`` has python3 on its PATH: looked up once per image, in a
        container created for the purpose and never started."""
        if image not in self._python:
            self._python[image] = await self.call(self._find_python, image)
        return self._python[image]

    def _find_python(self, image: str) -> bool:
        env = self.client.images.get(image).attrs.get("Config", {}).get("Env") or []
        path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
        container = self.client.containers.create(
            image, ["python3"], labels={f"{LABEL}.managed": "1", f"{LABEL}.driver": driver_id()},
            network_mode="none")
        try:
            url = self.client.api._url("/containers/{0}/archive", container.id)
            return any(self.client.api.head(url, params={"path": f"{d}/python3"}).ok
                       for d in path.split(":") if d.startswith("/"))
        finally:
            _quietly(container.remove, force=True)

    async def _bundled_python(self) -> tuple[str, str]:
        """The volume holding levrt's own Python and the version directory in it: filled
        once per engine from :data:`PYTHON_IMAGE` (checked once per executor)."""
        if self._bundle is None:
            self._bundle = asyncio.ensure_future(self.call(self._fill_bundle))
        try:
            return await asyncio.shield(self._bundle)
        except ExecutorError:
            self._bundle = None  # the next run tries again (an image built meanwhile)
            raise

    def _fill_bundle(self) -> tuple[str, str]:
        source = os.environ.get("LEV_PYTHON_IMAGE") or PYTHON_IMAGE
        try:
            image_id = self.client.images.get(source).id
        except _docker().errors.ImageNotFound:
            raise ExecutorError(
                f"this image has no python3, and the Python levrt brings in comes from "
                f"{source}, which is not in the engine: build it (images/build-all.sh) or "
                "set LEV_PYTHON_IMAGE to an image with python3") from None
        script = BUNDLE_PATH.read_bytes()
        version = hashlib.sha256(image_id.encode() + script).hexdigest()[:16]
        volume = f"levrt-python-{version}"
        labels = {f"{LABEL}.python": "1"}
        container = self.client.containers.create(
            source, ["python3", "-c", script.decode(), PYTHON_MOUNT, version],
            volumes={volume: {"bind": PYTHON_MOUNT, "mode": "rw"}}, network_mode="none",
            labels={**labels, f"{LABEL}.managed": "1", f"{LABEL}.driver": driver_id()})
        try:
            container.start()
            code = container.wait().get("StatusCode")
            if code != 0:
                tail = container.logs(tail=5).decode(errors="replace").strip()
                raise ExecutorError(f"copying python3 out of {source} failed ({code}): {tail}")
        finally:
            _quietly(container.remove, force=True)
        return volume, version

    def defer(self, cleanup: Awaitable[None]) -> None:
        """Run ``cleanup`` in the background; :meth:`aclose` waits for it."""
        future = asyncio.ensure_future(cleanup)
        self._deferred.add(future)
        future.add_done_callback(self._deferred.discard)

    async def aclose(self) -> None:
        if self._deferred:
            await asyncio.wait(self._deferred)
        # Whatever a cancellation left between two engine calls: this executor's own
        # containers only. Removing all of its job's took the containers of the job's other
        # runs, which an agent runs each with an executor of its own (5 runs of 150 failed
        # with their container gone before their output was read).
        for container in list(self._live.values()):
            await self.call(_quietly, container.remove, force=True)
        self._live.clear()
        self._pool.shutdown(wait=False)
        self.client.close()


def _ip(container: Any) -> str | None:
    container.reload()
    for net in (container.attrs.get("NetworkSettings", {}).get("Networks") or {}).values():
        if net.get("IPAddress"):
            return str(net["IPAddress"])
    return None


_reaped: set[str] = set()
_reap_lock = threading.Lock()


def reap_leftovers(client: Any) -> int:
    """Remove containers whose driver process on this host is gone (once per engine)."""
    with _reap_lock:
        if client.api.base_url in _reaped:
            return 0
        _reaped.add(client.api.base_url)
    managed = {"label": [f"{LABEL}.managed=1"]}
    # Sparse: the listing's own labels, with no inspection of each container (one that
    # another driver removes meanwhile would fail it).
    containers = [c for c in client.containers.list(all=True, sparse=True, filters=managed)
                  if _orphan(c.attrs.get("Labels"))]
    for container in containers:
        _quietly(container.remove, force=True)
    return len(containers)


def _orphan(labels: dict[str, str] | None) -> bool:
    return driver_gone((labels or {}).get(f"{LABEL}.driver"))


def _quietly(action: Callable[..., Any], **kwargs: Any) -> None:
    try:
        action(**kwargs)
    except _docker().errors.APIError:
        pass  # already going away


class _Prefixed:
    """A sidecar's output goes to the main run's log, marked with the service name."""

    def __init__(self, observer: RunObserver, name: str) -> None:
        self._observer = observer
        self._name = name

    def on_log(self, stream: str, lines: list[str]) -> None:
        self._observer.on_log(stream, [f"[{self._name}] {line}" for line in lines])

    def on_ctx(self, data: dict[str, Any]) -> None:
        """Sidecars do not write the run's document."""

    def on_error(self, kind: str, message: str) -> None:
        self._observer.on_log("stderr", [f"[{self._name}] {kind}: {message}"])


class _Watched:
    """Notes whether the shim said anything on the result channel."""

    def __init__(self, observer: RunObserver) -> None:
        self._observer = observer
        self.heard = False

    def on_log(self, stream: str, lines: list[str]) -> None:
        self._observer.on_log(stream, lines)

    def on_ctx(self, data: dict[str, Any]) -> None:
        self.heard = True
        self._observer.on_ctx(data)

    def on_error(self, kind: str, message: str) -> None:
        self.heard = True
        self._observer.on_error(kind, message)


def _frames(response: Any) -> Iterator[tuple[int, bytes]]:
    """The entries of a multiplexed log response: (1 stdout / 2 stderr, bytes)."""
    buffer = b""
    at = 0
    for block in response.iter_content(1 << 16):
        buffer = buffer[at:] + block
        at = 0
        while len(buffer) - at >= 8:
            stream, length = struct.unpack_from(">BxxxL", buffer, at)
            if len(buffer) - at - 8 < length:
                break
            yield stream, buffer[at + 8:at + 8 + length]
            at += 8 + length


@functools.lru_cache(maxsize=64)
def _second(stamp: bytes) -> int:
    """Unix second of an RFC 3339 log timestamp (Podman gives seconds, Docker nanoseconds)."""
    text = stamp.decode("ascii")
    moment = datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    offset = re.search(r"([+-])(\d\d):(\d\d)$", text)
    shift = 0 if offset is None else (int(offset[2]) * 3600 + int(offset[3]) * 60) * (
        1 if offset[1] == "+" else -1)
    return calendar.timegm(moment.timetuple()) - shift


class _Output:
    """A container's output, read exactly from the engine's log.

    Podman's follow stream drops, repeats and reorders chunks, so it is not used: the log
    is read whole (not followed), in pieces by time: each read asks for the entries from
    the second of the last one taken (``since`` counts whole seconds and includes that
    second) and skips the ones of that second already taken. An entry is taken when a
    later one follows it or when two reads in a row end with it unchanged: the last line
    of a file being written may be incomplete. After the container exits, one last read
    takes everything.
    """

    def __init__(self, api: Any, container_id: str, readers: dict[int, LineSplitter]) -> None:
        self._api = api
        self._url = api._url("/containers/{0}/logs", container_id)
        self._readers = readers
        self._second = 0  # the second of the last entry taken
        self._taken = 0  # entries of that second taken
        self._held: tuple[int, int, bytes] | None = None
        self._stream = 1
        self._pending: list[bytes] = []
        self._lock = asyncio.Lock()
        self.closed = False

    async def read(self, call: Callable[..., Any], final: bool = False) -> bool:
        """Take what is new; returns whether there was anything. Engine errors propagate.

        ``call`` runs the blocking request off the event loop; what it brings is handed on
        to the run's observer on the loop, whose writes are not thread-safe."""
        async with self._lock:
            frames = await call(self._fetch)
            return self._take_all(iter(frames), final)

    def _fetch(self) -> list[tuple[int, bytes]]:
        params = {"stdout": 1, "stderr": 1, "follow": 0, "timestamps": 1, "tail": "all"}
        if self._second:
            params["since"] = self._second
        response = self._api._get(self._url, params=params, stream=True)
        try:
            self._api._raise_for_status(response)
            return list(_frames(response))
        finally:
            response.close()

    def _take_all(self, frames: Iterator[tuple[int, bytes]], final: bool) -> bool:
        skip = self._taken
        last: tuple[int, int, bytes] | None = None
        fresh = False
        for stream, entry in frames:
            if self.closed:
                break
            stamp, _, data = entry.partition(b" ")
            second = _second(stamp)
            if skip and second == self._second:
                skip -= 1
                continue
            if last is not None:
                self._take(*last)
                fresh = True
            last = (stream, second, data)
        if last is not None and (final or last == self._held):
            self._take(*last)
            last = None
            fresh = True
        self._held = last
        self._flush()
        if final:
            for reader in self._readers.values():
                reader.close()
        return fresh

    def _take(self, stream: int, second: int, data: bytes) -> None:
        if second != self._second:
            self._second, self._taken = second, 0
        self._taken += 1
        if stream != self._stream:
            self._flush()
            self._stream = stream
        self._pending.append(data)

    def _flush(self) -> None:
        """Hand on what one stream wrote in a row at once: one store write, not one a line."""
        if self._pending and not self.closed:
            self._readers[self._stream].feed(b"".join(self._pending))
        self._pending.clear()


class DockerHandle(RunHandle):
    def __init__(self, executor: DockerExecutor, container: Any, spec: RunSpec,
                 observer: RunObserver, image: str) -> None:
        self.host = container.name
        self.sidecars: list[DockerHandle] = []
        self._executor = executor
        self._container = container
        self._spec = spec
        self._observer = _Watched(observer)
        self.image = image
        self._channel = stdout_reader(spec, self._observer)
        self._output = _Output(executor.client.api, container.id,
                               {1: self._channel, 2: LineSplitter("stderr", self._observer)})
        self._exited = asyncio.Event()
        self._poller: asyncio.Future[None] | None = None
        self._removed = False

    async def begin(self) -> None:
        try:
            await self._executor.call(self._container.start)
        except _docker().errors.APIError as exc:
            await self.kill()
            text = str(exc.explanation or exc)
            if self._spec.payload is not None and "python3" in text:
                raise ExecutorError(self._no_python()) from None
            raise ExecutorError(f"run {self._spec.name!r}: container did not start: {text}") \
                from None
        self._poller = asyncio.ensure_future(self._poll())

    def _no_python(self) -> str:
        return (f"image {self.image}: python3 did not start, neither its own nor the one "
                "levrt brings in; add python3 to the image (apt-get install python3) or run "
                "the tool with cmd=[...]")

    async def _poll(self) -> None:
        """Bring the log and ``ctx`` writes in while the run goes: often while there is
        output, less often while there is none, and never costing the engine more than a
        fifth of the time."""
        delay = POLL_FIRST
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._exited.wait(), delay)
            if self._exited.is_set():
                return
            began = time.monotonic()
            try:
                fresh = await self._output.read(self._executor.call)
            except Exception:  # noqa: BLE001 - the last read after the exit reports errors
                fresh = False
            delay = max(POLL_FIRST if fresh else min(delay * 2, POLL_MAX),
                        4 * (time.monotonic() - began))

    async def _read_rest(self) -> str | None:
        """Take the rest of the output after the exit; says why the results cannot be
        trusted, if they cannot."""
        self._exited.set()
        if self._poller is not None:
            await self._poller
        try:
            await self._output.read(self._executor.call, True)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the output unknown
            return f"the engine did not give the run's whole output ({exc})"
        if isinstance(self._channel, ChannelReader):
            return self._channel.unverified()
        return None

    async def wait_for_ports(self, ports: list[int]) -> None:
        try:
            await wait_for_ports(self._spec.name, await self.address(), ports, lambda: False)
        except ExecutorError:
            await self.kill()
            raise

    async def address(self) -> str:
        if self._spec.host_network:
            return "127.0.0.1"
        return await self._executor.call(_ip, self._container) or "127.0.0.1"

    async def wait(self) -> int:
        timeout = self._executor.settings.run_timeout or None
        try:
            try:
                result = await asyncio.wait_for(
                    self._executor.call(self._container.wait), timeout)
            except asyncio.TimeoutError:
                self._observer.on_error("Timeout", f"run took longer than {timeout:.0f}s "
                                                   "(run_timeout) and was killed")
                await self._executor.call(self._container.kill)
                result = await self._executor.call(self._container.wait)
            code = int(result.get("StatusCode", -1))
            problem = await self._read_rest()
            if code > 0 and self._spec.payload is not None and not self._observer.heard:
                # The shim never spoke: python3 did not start in this image.
                self._observer.on_error("ExecutorError", self._no_python())
            elif code == 0 and problem:
                # Never done with data missing: the run fails and says why.
                self._observer.on_error("ResultsUnverified", problem)
                code = 1
            return code if code < 128 or code > 128 + 64 else -(code - 128)
        except BaseException:
            await self.kill()
            raise
        finally:
            # The result is complete: removing the container need not hold the run's slot.
            self._executor.defer(self.kill())

    async def signal(self, sig: str) -> None:
        try:
            await self._executor.call(self._container.kill, signal=sig)
        except _docker().errors.APIError as exc:
            raise ExecutorError(f"cannot signal run {self._spec.name!r}: {exc.explanation}") \
                from None

    async def kill(self) -> None:
        self._output.closed = True  # a read still going feeds the run nothing more
        if self._poller is not None:
            self._poller.cancel()
        if not self._removed:
            self._removed = True
            try:
                await self._executor.call(self._container.remove, force=True)
            except _docker().errors.APIError:
                pass  # already gone
            self._executor._live.pop(self._container.id, None)
        for side in self.sidecars:
            await side.kill()


def package_image_tag(package_dir: Path, settings: Settings) -> str:
    """The conventional tag of a package's image: ``<prefix>lev.<user>.<tool>:<version>``."""
    pyproject = package_dir / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        name, version = str(project["name"]), str(project["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise ExecutorError(f"{pyproject}: cannot read project name and version ({exc})") \
            from None
    parts = name.split(".")
    if len(parts) != 3 or parts[0] != "lev":
        raise ExecutorError(f"{pyproject}: project name {name!r} is not lev.<user>.<tool>")
    return settings.image(f".{parts[1]}.{parts[2]}:{version}")


#: the names an image recipe goes by in a package folder, in the order they are looked for
RECIPES = ("Dockerfile", "dockerfile", "Containerfile")


def build_image(package_dir: Path, tags: list[str] | None = None,
                progress: Callable[[str], None] = lambda line: None,
                base_url: str | None = None) -> list[str]:
    """Build ``package_dir``'s recipe (:data:`RECIPES`, the first found) through the API;
    returns the tags it was given."""
    recipe = next((name for name in RECIPES if (package_dir / name).is_file()), None)
    if recipe is None:
        raise ExecutorError(f"{package_dir}: no {', '.join(RECIPES)} to build")
    settings = load_settings()
    tags = [package_image_tag(package_dir, settings), *(tags or [])]
    url = base_url or engine_url()
    if url is None:
        raise ExecutorError("no Docker API answers here: start Docker or "
                            "`podman system service --time=0 unix:///run/podman.sock`")
    client = _docker().DockerClient(base_url=url, timeout=600)
    try:
        for event in client.api.build(path=str(package_dir), dockerfile=recipe, tag=tags[0],
                                      rm=True,
                                      forcerm=True, decode=True):
            if "error" in event:
                raise ExecutorError(f"building {package_dir} failed: {event['error'].strip()}")
            for line in str(event.get("stream", "")).splitlines():
                progress(line)
        image = client.images.get(tags[0])
        for tag in tags[1:]:
            repository, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (
                tag, "", "latest")
            image.tag(repository, version)
        return tags
    except _docker().errors.APIError as exc:
        raise ExecutorError(f"building {package_dir} failed: {exc.explanation or exc}") from None
    finally:
        client.close()
