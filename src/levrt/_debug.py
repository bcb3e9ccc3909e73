"""`lev run --debug`: breakpoints in entries open pdb on the user's terminal.

An entry runs in a sandbox or a container, where the user's terminal is not. The shim turns
``breakpoint()`` and ``pdb.set_trace()`` into a connection to a Unix socket that the
executor mounts into the run (:data:`SANDBOX_DIR`); :class:`DebugRelay` listens on it and
joins one connection at a time to this process's terminal, so runs that stop together take
turns instead of mixing their prompts. With no relay the shim skips the breakpoint and says so
in the run's log.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import sys
import tempfile
import threading
from types import TracebackType
from typing import TextIO

__all__ = ["SANDBOX_DIR", "SOCKET_NAME", "DebugRelay"]

#: where executors mount the relay's folder inside a run (the same for sandboxes and containers)
SANDBOX_DIR = "/run/lev-debug"
SOCKET_NAME = "pdb.sock"
PROMPT = "(Pdb) "


class DebugRelay:
    """Joins pdb sessions of runs, one at a time, to a terminal.

    ``directory`` holds the listening socket; an executor mounts it at :data:`SANDBOX_DIR`
    and sets ``LEV_DEBUG`` to the socket's path there. Lines typed on ``stdin`` go to the
    session that holds the terminal; what the session writes goes to ``stdout``. Use as a
    context manager: leaving it closes the socket and removes the folder.
    """

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self._stdin = stdin or sys.stdin
        self._stdout = stdout or sys.stdout
        self.directory = tempfile.mkdtemp(prefix="lev-debug-")
        # Runs may execute as another user inside a container: the socket must be reachable.
        os.chmod(self.directory, 0o755)
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(os.path.join(self.directory, SOCKET_NAME))
        os.chmod(os.path.join(self.directory, SOCKET_NAME), 0o777)
        self._server.listen(16)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._closed = threading.Event()
        self._terminal_closed = False
        threading.Thread(target=self._read_terminal, name="lev-debug-stdin", daemon=True).start()
        self._acceptor = threading.Thread(target=self._serve, name="lev-debug", daemon=True)
        self._acceptor.start()

    def __enter__(self) -> DebugRelay:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _read_terminal(self) -> None:
        # One reader for the whole job: a line typed while no run is stopped waits for the next.
        for line in self._stdin:
            self._lines.put(line)
        self._lines.put(None)

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        ended, prompted = threading.Event(), threading.Event()

        def show() -> None:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    ended.set()
                    return
                text = data.decode("utf-8", "replace")
                self._stdout.write(text)
                self._stdout.flush()
                if text.endswith(PROMPT):
                    prompted.set()

        threading.Thread(target=show, name="lev-debug-out", daemon=True).start()
        while not ended.is_set():
            if self._terminal_closed:
                # Nobody can answer any more: every prompt gets the answer that lets the run go on.
                if not prompted.wait(0.1):
                    continue
                prompted.clear()
                line: str | None = "continue\n"
            else:
                try:
                    line = self._lines.get(timeout=0.1)
                except queue.Empty:
                    continue
                if line is None:
                    self._terminal_closed = True
                    continue
            try:
                conn.sendall(line.encode())
            except OSError:
                return
