"""Text that PostgreSQL cannot hold: its text types refuse the NUL character, which a tool's
output (and so a log line, an error message) may contain. These psycopg 3 dumpers store
U+FFFD (the replacement character) in its place, so the write succeeds. JSON documents keep
NUL: JSON escapes it."""

from __future__ import annotations

from typing import Any

from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

NUL = "\x00"
REPLACEMENT = "\ufffd"


def _nul_free(text: str) -> str:
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


class _NulFreeStrDumper(StrDumperUnknown):
    def dump(self, obj: str) -> Any:
        return super().dump(_nul_free(obj))


class _NulFreeStrBinaryDumper(StrBinaryDumper):
    def dump(self, obj: str) -> Any:
        return super().dump(_nul_free(obj))


def register(connection: Any) -> None:
    """Use these dumpers for every ``str`` sent on a psycopg ``connection``."""
    connection.adapters.register_dumper(str, _NulFreeStrDumper)
    connection.adapters.register_dumper(str, _NulFreeStrBinaryDumper)
