"""The docker executor's engine check, against fake endpoints on Unix sockets (no engine)."""

import socket
import threading
import time

import pytest

from levrt import executors
from levrt._cli import cli_main
from levrt.executors import ExecutorError
from levrt.executors.docker import probe_engines


class FakeEngine:
    """A Unix socket that keeps its first ``silent`` connections unanswered, then answers
    ``GET /_ping`` with OK."""

    def __init__(self, path, silent):
        self.path = str(path)
        self.silent = silent
        self.connections = 0
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(self.path)
        self.server.listen(16)
        self.held = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            if self.connections <= self.silent:
                self.held.append(conn)  # accepted, never answered: an engine too busy
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: 2\r\nConnection: close\r\n\r\nOK")

    def close(self):
        self.server.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def sock_dir(tmp_path_factory):
    # A short path: Unix socket paths are limited to about 100 bytes.
    import tempfile

    path = tempfile.mkdtemp(prefix="lev-sock-", dir="/tmp")
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def test_a_busy_engine_is_waited_for_with_progress(sock_dir, monkeypatch, capsys):
    engine = FakeEngine(f"{sock_dir}/e.sock", silent=2)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{engine.path}")
    try:
        began = time.monotonic()
        url, tried = probe_engines(patience=30)
    finally:
        engine.close()
    assert url == f"unix://{engine.path}" and tried == []
    assert 3 <= time.monotonic() - began < 20  # two silent attempts of 3 s and 4.5 s
    assert "slow to answer; waiting up to 30s" in capsys.readouterr().err


def test_an_engine_that_never_answers_is_reported_with_attempts_and_time(sock_dir,
                                                                         monkeypatch):
    engine = FakeEngine(f"{sock_dir}/e.sock", silent=100)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{engine.path}")
    try:
        url, tried = probe_engines(patience=6)
    finally:
        engine.close()
    assert url is None
    (line,) = tried
    assert line.startswith(f"unix://{engine.path}: no answer (") and "attempts in" in line


def test_a_refusing_socket_is_passed_over_at_once(sock_dir, monkeypatch):
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(f"{sock_dir}/dead.sock")
    dead.close()  # the file stays, nothing listens
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock_dir}/dead.sock")
    began = time.monotonic()
    assert probe_engines() == (None, [f"unix://{sock_dir}/dead.sock: refused the "
                                      "connection, 1 attempt in 0s"])
    assert time.monotonic() - began < 2


@pytest.mark.parametrize("where", ["env", "config", "argument"])
def test_the_error_says_where_the_executor_choice_came_from(where, lev_home, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    name = None
    if where == "env":
        monkeypatch.setenv("LEV_EXECUTOR", "docker")
        origin = "LEV_EXECUTOR=docker"
    elif where == "config":
        lev_home.mkdir(parents=True, exist_ok=True)
        (lev_home / "config.toml").write_text('executor = "docker"\n')
        origin = f"executor = 'docker' in {lev_home / 'config.toml'}"
    else:
        name, origin = "docker", "executor='docker'"
    with pytest.raises(ExecutorError) as info:
        executors.create(name)
    assert str(info.value).startswith(
        f"{origin}: no Docker API answers here (tried unix:///nonexistent/docker.sock: "
        "no such socket)")


def test_lev_run_names_the_flag(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tool.py").write_text("def f():\n    return 1\n")
    assert cli_main(["run", "tool.py:f", "--executor", "docker"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("lev: error: --executor: no Docker API answers here (tried "
                          "unix:///nonexistent/docker.sock: no such socket)")
