"""Logs whose cost stays linear (docs/runtime.md#logs): split in linear time, rows capped, carriage
returns drawn over, per-run retention capped, and pages instead of whole logs."""

import sys
import time

import pytest

import levrt
from levrt import Cr
from levrt._text import LOG_ROW_BYTES
from levrt.executors.base import LineSplitter
from levrt.store import Store


class Lines:
    def __init__(self) -> None:
        self.rows: list[str] = []

    def on_log(self, stream: str, lines: list[str]) -> None:
        self.rows.extend(lines)


def split(data: bytes, chunk: int = 65536) -> tuple[list[str], float]:
    seen = Lines()
    splitter = LineSplitter("stdout", seen)
    started = time.perf_counter()
    for at in range(0, len(data), chunk):
        splitter.feed(data[at:at + chunk])
    splitter.close()
    return seen.rows, time.perf_counter() - started


def test_one_long_line_splits_in_linear_time_into_capped_rows():
    size = 40_000_000
    rows, one_line = split(b"x" * size)
    _, in_lines = split((b"y" * 1023 + b"\n") * (size // 1024))
    assert max(len(row) for row in rows) == LOG_ROW_BYTES
    assert sum(len(row) for row in rows) == size
    # Quadratic splitting took 20 s for this; linear takes about what 1 KB lines take.
    assert one_line < max(10 * in_lines, 2)


def test_rows_are_cut_between_characters():
    rows, _ = split("é".encode() * LOG_ROW_BYTES + b"\n", chunk=4096)
    assert "".join(rows) == "é" * LOG_ROW_BYTES
    assert all(len(row.encode()) <= LOG_ROW_BYTES for row in rows) and "\ufffd" not in "".join(rows)


def test_progress_bar_keeps_its_last_state():
    data = b"".join(f"\rscanning {n:3d}%".encode() for n in range(101))
    rows, _ = split(data + b"\r\nnext line\r\n" + b"\r50%" * 100_000 + b"\rdone\n", chunk=7)
    assert rows == ["scanning 100%", "next line", "done"]


def test_run_log_keeps_head_and_tail_and_counts_the_cut_middle(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'levrt.db'}") as store:
        job = store.create_job("chatty")
        writer = store.run_log(job, 0, 4096)
        for n in range(2000):
            writer.append([("stdout", f"line {n:05d}")])
        texts = [row["text"] for row in store.get_logs(job)]
        kept = sum(len(text) + 1 for text in texts)
        assert texts[0] == "line 00000" and texts[-1] == "line 01999"
        markers = [text for text in texts if text.startswith("[lev]")]
        assert len(markers) == 1
        cut = texts.index(markers[0])
        first_after = int(texts[cut + 1].split()[1])
        dropped = first_after - int(texts[cut - 1].split()[1]) - 1
        assert markers[0].startswith(f"[lev] {dropped} lines ({dropped * 11} bytes) of this "
                                     "run's log cut here")
        assert kept < 4096 * 1.25 + len(markers[0])
        # The job's own lines and other runs have budgets of their own.
        store.append_logs(job, 1, [("stdout", "other")])
        assert store.get_logs(job, run_id=1)[0]["text"] == "other"


def run_printing(code: str, **kw) -> str:
    async def main() -> None:
        await Cr("python", cmd=[sys.executable, "-c", code])

    return levrt.run(main(), executor="process", echo=False, **kw)


def test_a_run_printing_one_huge_line_is_stored_in_capped_rows(store):
    started = time.perf_counter()
    run_printing("import sys; sys.stdout.write('z' * 20_000_000)")
    elapsed = time.perf_counter() - started
    job = store.list_jobs()[0]
    texts = [row["text"] for row in store.get_logs(job["id"], run_id=0)]
    assert max(len(text) for text in texts) == LOG_ROW_BYTES
    [marker] = [text for text in texts if text.startswith("[lev] ")]
    lines, cut = (int(marker.split()[at].strip("(")) for at in (1, 3))
    kept = sum(len(text) for text in texts if text != marker)
    # Every byte is either kept or counted as cut (the count includes each row's end).
    assert kept + cut - lines == 20_000_000
    assert kept <= 16 * 1024 * 1024 * 1.25
    assert elapsed < 20


def test_log_max_bytes_setting_caps_a_chatty_run(store, monkeypatch):
    monkeypatch.setenv("LEV_LOG_MAX_BYTES", "65536")
    run_printing("for n in range(200_000): print('line', n)")
    job = store.list_jobs()[0]
    texts = [row["text"] for row in store.get_logs(job["id"], run_id=0)]
    assert texts[0] == "line 0" and texts[-1] == "line 199999"
    assert sum(len(text) + 1 for text in texts) < 65536 * 1.25 + 200
    assert sum(text.startswith("[lev] ") for text in texts) == 1


@pytest.mark.parametrize("value", ["-1", "12", "many"])
def test_log_max_bytes_setting_must_be_usable(monkeypatch, value):
    from levrt._config import ConfigError, load_settings

    monkeypatch.setenv("LEV_LOG_MAX_BYTES", value)
    with pytest.raises(ConfigError, match="LEV_LOG_MAX_BYTES"):
        load_settings()


# -- pages, not whole logs -----------------------------------------------------------------


@pytest.fixture
def big_log(store):
    """A finished job of alice's with a 30 MB log: 400 rows of 64 KiB, then 20,000 lines."""
    job = store.create_job("chatty", owner="alice")
    for _ in range(8):
        store.append_logs(job, 0, [("stdout", "w" * LOG_ROW_BYTES)] * 50)
    store.append_logs(job, 0, [("stderr", f"line {n}") for n in range(20_000)])
    store.finish_job(job, "done")
    return job


@pytest.fixture
def api(store):
    from helpers_hub import PASSWORD, TestClient

    from levrt.server import Settings, create_app

    store.create_user("alice", PASSWORD)
    headers = {"Authorization": f"Bearer {store.create_token('alice', 'test')['token']}"}
    with TestClient(create_app(Settings(db_url=store.url), store=store)) as client:
        client.headers.update(headers)
        yield client


def test_the_task_bundle_carries_the_log_tail_in_bounded_memory(api, big_log):
    import tracemalloc

    tracemalloc.start()
    try:
        answer = api.get(f"/api/tasks/{big_log}")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 200
    bundle = answer.json()
    assert len(answer.content) < 2 * 1024 * 1024 and bundle["log_more"] is True
    assert bundle["log"][-1]["text"] == "line 19999"
    # The whole log was 228 MB in one answer before; now neither answer nor server grows.
    assert peak < 32 * 1024 * 1024


def test_the_logs_route_pages_through_everything(api, big_log):
    texts, after, pages = [], 0, 0
    while True:
        answer = api.get(f"/api/tasks/{big_log}/logs", params={"after": after})
        assert answer.status_code == 200 and len(answer.content) < 5 * 1024 * 1024
        rows = answer.json()
        if not rows:
            break
        pages += 1
        texts += [row["text"] for row in rows]
        after = rows[-1]["seq"]
    assert len(texts) == 20_400 and pages >= 8
    assert texts[399] == "w" * LOG_ROW_BYTES and texts[400:] == [f"line {n}" for n in range(20_000)]
    assert api.get(f"/api/tasks/{big_log}/logs", params={"limit": 0}).status_code == 422


def test_lev_show_and_lev_task_logs_print_the_whole_log_page_by_page(store, big_log, capsys,
                                                                     monkeypatch):
    import io
    import json

    from helpers_hub import PASSWORD, serve_in_thread

    from levrt._cli import cli_main

    assert cli_main(["show", big_log[:6]]) == 0
    out = capsys.readouterr().out
    assert out.count("line ") == 20_000 and out.rstrip().endswith("line 19999")
    assert cli_main(["show", big_log, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown["log"]) == 20_400 and shown["log_more"] is False
    assert cli_main(["show", big_log, "--json", "--no-log"]) == 0
    assert json.loads(capsys.readouterr().out)["log_more"] is True
    store.create_user("alice", PASSWORD)
    with serve_in_thread(store) as url:
        monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
        assert cli_main(["login", url, "--user", "alice", "--password-stdin"]) == 0
        capsys.readouterr()
        assert cli_main(["task", "logs", big_log]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 20_400 and lines[-1].endswith("line 19999")


# -- unclean text ---------------------------------------------------------------------------


UNCLEAN = (b"\x1b[31mred\x1b[0m \x1b]0;pwned\x07title \x1b[2Jcleared \xff\xfe bytes\n")


def test_control_characters_are_kept_in_the_store_and_escaped_on_terminals(store):
    import json
    import os
    import pty
    import subprocess

    from levrt._job_json import job_bundle

    async def main() -> None:
        code = f"import sys; sys.stdout.buffer.write({UNCLEAN!r})"
        await Cr("python", cmd=[sys.executable, "-c", code])
        print("job says \udcff")  # what surrogateescape leaves of a bad byte

    levrt.run(main(), executor="process", echo=False)
    job_id = store.list_jobs()[0]["id"]
    texts = [row["text"] for row in store.get_logs(job_id)]
    raw = "\x1b[31mred\x1b[0m \x1b]0;pwned\x07title \x1b[2Jcleared \ufffd\ufffd bytes"
    assert raw in texts and "job says \ufffd" in texts
    json.dumps(job_bundle(store, job_id), ensure_ascii=False).encode("utf-8")

    leader, follower = pty.openpty()
    shown = subprocess.run([sys.executable, "-m", "levrt", "show", job_id], stdout=follower,
                           stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "300"},
                           timeout=60)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert shown.returncode == 0, shown.stderr
    text = out.decode()
    assert "\\x1b[31mred\\x1b[0m \\x1b]0;pwned\\x07title \\x1b[2Jcleared" in text
    assert "\x1b]0;" not in text and "\x1b[2J" not in text and "\x07" not in text


def test_ctx_writes_that_are_not_unicode_are_stored_with_replacement_characters(store):
    from levrt import ctx, remote

    def odd() -> Cr:
        @remote
        def entry():
            bad = b"\xffname".decode("utf-8", "surrogateescape")
            ctx.set({bad: bad, "nested": [bad, {"k": bad}]})
        return Cr("python", entry=entry())

    async def main() -> dict:
        return await (await odd()).get()

    data = levrt.run(main(), executor="process", echo=False)
    assert data == {"\ufffdname": "\ufffdname", "nested": ["\ufffdname", {"k": "\ufffdname"}]}


def test_visible_escapes_controls_but_tabs_and_newlines():
    from levrt._cli_base import prefixed
    from levrt._text import visible

    assert visible("a\tb\nc\x1b[1m\r\x00\x7f\x9b") == "a\tb\nc\\x1b[1m\\x0d\\x00\\x7f\\x9b"
    assert prefixed(0, ["\x1b[31mx\x1b[0m"], terminal=True) == ["[run 0] \\x1b[31mx\\x1b[0m"]
    assert prefixed(0, ["\x1b[31mx\x1b[0m"], terminal=False) == ["[run 0] \x1b[31mx\x1b[0m"]
