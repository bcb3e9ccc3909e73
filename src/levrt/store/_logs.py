"""A run's log as the store keeps it: rows of at most :data:`LOG_ROW_BYTES`, and at most
``max_bytes`` per run (or per job for its own lines) — the first half and the last half
kept, the middle counted and cut, with one marker row where it was."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, LargeBinary, cast, delete, func, insert, select, update

from levrt._text import LOG_ROW_BYTES, clean_text, text_pieces
from levrt.store._common import now
from levrt.store.models import Log

_logs = Log.__table__

LOG_STREAMS = ("stdout", "stderr", "job")


def log_rows(entries: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str, int]]:
    """``(stream, text, size)`` for each row the ``(stream, line)`` entries become: text made
    valid Unicode, a line longer than a row cut into rows; ``size`` counts UTF-8 bytes and
    the line's end."""
    for stream, line in entries:
        if stream not in LOG_STREAMS:
            raise ValueError(f"log stream must be one of {', '.join(LOG_STREAMS)}; "
                             f"got {stream!r}")
        for piece in text_pieces(clean_text(line), LOG_ROW_BYTES):
            yield stream, piece, len(piece.encode("utf-8", "replace")) + 1


def _where(job_id: str, run_id: int | None) -> tuple[Any, ...]:
    run = _logs.c.run_id.is_(None) if run_id is None else _logs.c.run_id == run_id
    return (_logs.c.job_id == job_id, run)


class RunLog:
    """Appends the lines of one run (``run_id`` None: the job's own lines) and keeps them
    within ``max_bytes`` (0: no cap).

    The first half of the budget is kept as it comes; past it, rows keep being stored (live
    readers see them) and the oldest beyond the second half are deleted in batches, the
    first deleted row becoming a marker that counts what went. Deleting in batches of at
    least a quarter of the tail keeps the cost linear in what the run writes.
    """

    def __init__(self, write: Callable[[], AbstractContextManager[Connection]], job_id: str,
                 run_id: int | None, max_bytes: int) -> None:
        self._write = write
        self.job_id = job_id
        self.run_id = run_id
        self.max_bytes = max_bytes
        self._head_left = max_bytes - max_bytes // 2
        self._tail_max = max_bytes // 2
        self._tail_bytes = 0
        self._marker: int | None = None
        self._head_end: int | None = None
        self.cut_lines = 0
        self.cut_bytes = 0
        self._lock = threading.Lock()

    def append(self, entries: Iterable[tuple[str, str]]) -> None:
        """Store ``(stream, line)`` entries in order, in one transaction."""
        ts = now()
        rows, head, tail = [], 0, 0
        for stream, text, size in log_rows(entries):
            rows.append({"job_id": self.job_id, "run_id": self.run_id, "stream": stream,
                         "text": text, "ts": ts})
            if not self.max_bytes:
                head += 1
            elif tail == 0 and self._head_left >= size:
                self._head_left -= size
                head += 1
            else:
                self._head_left = 0
                tail += size
        if not rows:
            return
        with self._lock, self._write() as conn:
            if head:
                conn.execute(insert(_logs), rows[:head])
            if not tail:
                return
            if self._head_end is None:
                # The head ends with the last row stored so far; it is never cut.
                self._head_end = conn.execute(
                    select(func.max(_logs.c.seq)).where(*_where(self.job_id, self.run_id))
                ).scalar() or 0
            conn.execute(insert(_logs), rows[head:])
            self._tail_bytes += tail
            if self._tail_bytes > self._tail_max + self._tail_max // 4:
                self._cut(conn)

    def _cut(self, conn: Connection) -> None:
        size = func.length(cast(_logs.c.text, LargeBinary)) + 1
        first = self._head_end if self._marker is None else self._marker
        assert first is not None
        query = (select(_logs.c.seq, size)
                 .where(*_where(self.job_id, self.run_id), _logs.c.seq > first)
                 .order_by(_logs.c.seq))
        excess = self._tail_bytes - self._tail_max
        doomed: list[int] = []
        for seq, row_size in conn.execute(query):
            if excess <= 0:
                break
            doomed.append(seq)
            excess -= row_size
            self.cut_bytes += row_size
            self._tail_bytes -= row_size
        if not doomed:
            return
        self.cut_lines += len(doomed)
        if self._marker is None:
            self._marker = doomed.pop(0)
        if doomed:
            conn.execute(delete(_logs).where(*_where(self.job_id, self.run_id),
                                             _logs.c.seq > self._marker,
                                             _logs.c.seq <= doomed[-1]))
        what = "this run's" if self.run_id is not None else "the job's"
        conn.execute(update(_logs).where(_logs.c.seq == self._marker).values(
            stream="job",
            text=f"[lev] {self.cut_lines} lines ({self.cut_bytes} bytes) of {what} log cut "
                 f"here, to keep it within log_max_bytes = {self.max_bytes}",
        ))
