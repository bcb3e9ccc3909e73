"""`lev run --debug`: breakpoints in entries give pdb on the terminal; elsewhere a log line."""

import os
import pty
import select
import subprocess
import sys
import time

import pytest

from levrt.executors.docker import engine_url
from levrt.store import Store, default_url

ENTRY = '''
from levrt import Cr, ctx, remote


def greet(who: str = "there") -> Cr:
    @remote
    def entry():
        import pdb

        breakpoint()
        pdb.set_trace()
        ctx.set(msg=f"hey {who}")

    return Cr("localhost/lev-base:bookworm", entry=entry())
'''


@pytest.fixture
def tool(tmp_path):
    path = tmp_path / "dbg.py"
    path.write_text(ENTRY)
    return f"{path}:greet"


def _lev() -> list[str]:
    return [sys.executable, "-m", "levrt"]


class Terminal:
    """`lev` on a pseudo-terminal, as a user at a shell would run it."""

    def __init__(self, argv: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(argv[0], argv)
        self.seen = ""

    def expect(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise AssertionError(f"no {text!r} on the terminal; it shows:\n{self.seen}")
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # the other side closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"terminal closed before {text!r}; it showed:\n{self.seen}")
            self.seen += chunk.decode("utf-8", "replace")
        found, self.seen = self.seen, self.seen[self.seen.index(text) + len(text):]
        return found

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                while select.select([self.fd], [], [], 0.1)[0]:
                    chunk = os.read(self.fd, 65536)
                    if not chunk:
                        break
                    self.seen += chunk.decode("utf-8", "replace")
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, 9)
        raise AssertionError(f"lev run did not end; the terminal shows:\n{self.seen}")


@pytest.fixture
def engine():
    if engine_url() is None:
        if os.environ.get("CI"):
            pytest.fail("CI=true but no Docker API answers (scripts/engine.sh should start one)")
        pytest.skip("no Docker API answers here (see scripts/engine.sh)")


def _last_job() -> tuple[dict, list[dict], str]:
    """The newest job of this test's store: its record, documents' data and log text."""
    with Store(default_url()) as store:
        job = store.list_jobs(limit=1)[0]
        documents = [d["data"] for d in store.list_documents(job["id"])]
        log = "\n".join(row["text"] for row in store.get_logs(job["id"]))
    return job, documents, log


def _debug_session(argv: list[str]) -> tuple[dict, list[dict], str]:
    term = Terminal(argv)
    before = term.expect("(Pdb) ")
    assert "lev: breakpoint at" in before and "dbg.py" in before
    term.type("p who")
    term.expect("'pal'")
    term.expect("(Pdb) ")
    term.type("c")
    term.expect("lev: breakpoint at")  # the second stop: pdb.set_trace()
    term.expect("(Pdb) ")
    term.type("c")
    assert term.wait() == 0
    return _last_job()


@pytest.mark.parametrize("executor", ["process", "docker"])
def test_breakpoint_under_debug_on_a_terminal(tool, executor, request):
    if executor == "docker":
        request.getfixturevalue("engine")
    job, documents, _ = _debug_session([*_lev(), "run", tool, "--who", "pal", "--debug",
                                        "--executor", executor])
    assert job["status"] == "done"
    assert documents == [{"msg": "hey pal"}]


def test_breakpoints_are_skipped_without_a_terminal(tool):
    done = subprocess.run([*_lev(), "run", tool, "--who", "pal", "--debug",
                           "--executor", "process"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--debug needs a terminal" in done.stderr
    job, documents, log = _last_job()
    assert job["status"] == "done" and documents == [{"msg": "hey pal"}]
    assert log.count("breakpoint at") == 2 and "dbg.py:10 skipped" in log


WORKFLOW = '''
async def flow(who: str = "there"):
    breakpoint()
    return who
'''


def test_workflow_breakpoint_takes_the_same_terminal(tmp_path):
    path = tmp_path / "flow.py"
    path.write_text(WORKFLOW)
    term = Terminal([*_lev(), "run", f"{path}:flow", "--who", "pal", "--debug"])
    term.expect("lev: breakpoint at")
    term.expect("(Pdb) ")
    term.type("p who")
    term.expect("'pal'")
    term.expect("(Pdb) ")
    term.type("c")
    assert term.wait() == 0
    job, _, _ = _last_job()
    assert job["status"] == "done"
