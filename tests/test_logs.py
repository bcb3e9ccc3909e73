"""Logs whose cost stays linear (DESIGN §5): split in linear time, rows capped, carriage
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
    assert one_line < max(3 * in_lines, 0.5)


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
