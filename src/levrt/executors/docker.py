"""Runs in containers through the Docker Engine API (Docker, or Podman's service).

Each run is one container labelled with its job and run; the shim and the
payload are copied in before it starts, together with the run's ``files``.
Stdout (the result channel) and stderr (the log) are followed on two streams
while it runs. The container is removed however the run ends; containers left
by a driver that died are removed when the next executor starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
import tarfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .._config import Settings, load_settings, tomllib
from .._debug import SANDBOX_DIR as DEBUG_DIR
from .._debug import SOCKET_NAME as DEBUG_SOCKET
from .._driver import driver_gone, driver_id
from ..shim import SHIM_PATH
from ..shim.entry import dumps
from .base import (
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
#: seconds a log stream may stay open after its container exited
STREAM_GRACE = 5.0
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


def engine_url() -> str | None:
    """The Docker API endpoint that answers here: ``DOCKER_HOST`` or a usual socket."""
    candidates = [os.environ["DOCKER_HOST"]] if os.environ.get("DOCKER_HOST") else [
        "unix:///var/run/docker.sock", "unix:///run/podman/podman.sock",
        "unix:///run/podman.sock"]
    for url in candidates:
        if url.startswith("unix://") and not os.path.exists(url[len("unix://"):]):
            continue
        try:
            client = _docker().DockerClient(base_url=url, timeout=3)
            try:
                client.ping()
            finally:
                client.close()
        except Exception:  # noqa: BLE001 - any failure means "not this one"
            continue
        return url
    return None


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
        self.base_url = base_url or engine_url()
        if self.base_url is None:
            raise ExecutorError(
                "no Docker API answers here (DOCKER_HOST, /var/run/docker.sock, "
                "/run/podman.sock): start Docker or `podman system service --time=0 "
                "unix:///run/podman.sock`, or use LEV_EXECUTOR=process"
            )
        self.client = _docker().DockerClient(base_url=self.base_url, timeout=120)
        # Every run blocks threads on its wait and its two log streams: a pool sized for
        # wide fan-outs, so that runs never queue behind each other's waits.
        self._pool = ThreadPoolExecutor(max_workers=256, thread_name_prefix="lev-docker")
        self._images: set[str] = set()  # found in the engine already
        self._deferred: set[asyncio.Future[None]] = set()
        self._reaped = False
        self._jobs: set[str] = set()

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
        if spec.payload is not None:
            payload = dumps(spec.payload)
            if files or len(payload) > INLINE_PAYLOAD:
                files[f"{SHIM_DIR}/shim.py"] = SHIM_PATH.read_bytes()
                files[f"{SHIM_DIR}/payload"] = payload.encode()
                command = ["python3", "-u", f"{SHIM_DIR}/shim.py", f"{SHIM_DIR}/payload"]
            else:
                # Small and with no files to copy: shim and payload ride in the command and
                # the environment, which saves the engine an archive upload per run.
                command = ["python3", "-u", "-c", _shim_source()]
                environment = {**spec.env, "LEV_PAYLOAD": payload}
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
            options["volumes"] = {self.debug_dir: {"bind": DEBUG_DIR, "mode": "rw"}}
            options["environment"] = {**environment,
                                      "LEV_DEBUG": f"{DEBUG_DIR}/{DEBUG_SOCKET}"}
        if self.settings.memory:
            options["mem_limit"] = self.settings.memory
        if self.settings.cpus:
            options["nano_cpus"] = int(self.settings.cpus * 1e9)
        errors = _docker().errors
        self._jobs.add(spec.job_id)
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
        handle = DockerHandle(self, container, spec, observer, image)
        try:
            if files:
                await self.call(container.put_archive, "/", _tar(files))
        except BaseException:
            await handle.kill()
            raise
        return handle

    def defer(self, cleanup: Awaitable[None]) -> None:
        """Run ``cleanup`` in the background; :meth:`aclose` waits for it."""
        future = asyncio.ensure_future(cleanup)
        self._deferred.add(future)
        future.add_done_callback(self._deferred.discard)

    async def aclose(self) -> None:
        if self._deferred:
            await asyncio.wait(self._deferred)
        # Whatever a cancellation left between two engine calls goes with its job.
        for job_id in self._jobs:
            leftovers = await self.call(self.client.containers.list, all=True,
                                        filters={"label": [f"{LABEL}.job={job_id}"]})
            for container in leftovers:
                await self.call(_quietly, container.remove, force=True)
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
    containers = [c for c in client.containers.list(all=True, filters=managed)
                  if _orphan(c.attrs.get("Config", {}).get("Labels"))]
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


class _Stream:
    """One followed output stream, counting what it consumed."""

    def __init__(self, name: str, reader: LineSplitter) -> None:
        self.which = {"stdout": name == "stdout", "stderr": name == "stderr"}
        self.reader = reader
        self.consumed = 0
        self.done = False
        self.live: Any = None  # the engine's follow stream, while it is read
        self._lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            if not self.done:
                self.consumed += len(chunk)
                self.reader.feed(chunk)

    @property
    def complete(self) -> bool:
        """The shim marks the end of both its streams: then nothing was lost."""
        return self.reader.ended

    def feed_rest(self, everything: bytes) -> None:
        with self._lock:
            rest = everything[self.consumed:]
            self.consumed = len(everything)
            if rest:
                self.reader.feed(rest)

    def finish(self) -> None:
        """No more input: a follow stream still open is closed."""
        with self._lock:
            self.done = True
            self.reader.close()
        self.stop_following()

    def stop_following(self) -> None:
        """Close the follow stream if it is open, which frees the thread that reads it:
        Podman may never end one, and a blocked reader would also hold up the interpreter's
        exit, which joins the pool's threads."""
        if self.live is not None:
            with contextlib.suppress(Exception):
                self.live.close()


class DockerHandle(RunHandle):
    def __init__(self, executor: DockerExecutor, container: Any, spec: RunSpec,
                 observer: RunObserver, image: str) -> None:
        self.host = container.name
        self.sidecars: list[DockerHandle] = []
        self._executor = executor
        self._container = container
        self._spec = spec
        self._observer = _Watched(observer)
        self._image = image
        self._streams: list[asyncio.Future[None]] = []
        self._readers: list[_Stream] = []
        self._removed = False

    async def begin(self) -> None:
        call = self._executor.call
        try:
            await call(self._container.start)
        except _docker().errors.APIError as exc:
            await self.kill()
            text = str(exc.explanation or exc)
            if self._spec.payload is not None and "python3" in text:
                raise ExecutorError(self._no_python()) from None
            raise ExecutorError(f"run {self._spec.name!r}: container did not start: {text}") \
                from None
        self._readers = [_Stream("stdout", stdout_reader(self._spec, self._observer)),
                         _Stream("stderr", LineSplitter("stderr", self._observer))]
        self._streams = [asyncio.ensure_future(call(self._follow, stream))
                         for stream in self._readers]

    def _no_python(self) -> str:
        return (f"image {self._image} has no python3, which @remote entries need: add python3 "
                "to the image (apt-get install python3) or run the tool with cmd=[...]")

    def _follow(self, stream: _Stream) -> None:
        try:
            stream.live = self._container.logs(stream=True, follow=True, **stream.which)
            if stream.done:  # finished while the stream was being opened
                stream.stop_following()
            for chunk in stream.live:
                stream.feed(chunk)
        except Exception:  # noqa: BLE001 - the container went away or the stream was closed
            pass

    def _catch_up(self, stream: _Stream) -> None:
        """Read what a live stream missed: with Podman it may close before the last bytes."""
        if not stream.complete:
            try:
                stream.feed_rest(self._container.logs(stream=False, **stream.which))
            except Exception:  # noqa: BLE001 - removed already: nothing more to read
                pass
        stream.finish()

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
            # A follow stream normally ends with the container, but an engine may keep one
            # open: past a grace period the re-read below has everything anyway.
            await asyncio.wait(self._streams, timeout=STREAM_GRACE)
            await asyncio.gather(*(self._executor.call(self._catch_up, stream)
                                   for stream in self._readers))
            if code > 0 and self._spec.payload is not None and not self._observer.heard:
                # The shim never spoke: python3 did not start in this image.
                self._observer.on_error("ExecutorError", self._no_python())
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
        if not self._removed:
            self._removed = True
            try:
                await self._executor.call(self._container.remove, force=True)
            except _docker().errors.APIError:
                pass  # already gone
            if self._streams:  # they end with the container, or are ended here
                await asyncio.wait(self._streams, timeout=STREAM_GRACE)
                for stream in self._readers:
                    stream.stop_following()
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


def build_image(package_dir: Path, tags: list[str] | None = None,
                progress: Callable[[str], None] = lambda line: None,
                base_url: str | None = None) -> list[str]:
    """Build ``package_dir``'s Dockerfile through the API; returns the tags it was given."""
    if not (package_dir / "Dockerfile").is_file():
        raise ExecutorError(f"{package_dir}: no Dockerfile to build")
    settings = load_settings()
    tags = [package_image_tag(package_dir, settings), *(tags or [])]
    url = base_url or engine_url()
    if url is None:
        raise ExecutorError("no Docker API answers here: start Docker or "
                            "`podman system service --time=0 unix:///run/podman.sock`")
    client = _docker().DockerClient(base_url=url, timeout=600)
    try:
        for event in client.api.build(path=str(package_dir), tag=tags[0], rm=True,
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
