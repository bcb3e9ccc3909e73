"""Text as levrt keeps and shows it: log rows cut to size, data made valid Unicode on entry,
control characters made visible on terminals.

The rule for text that is not valid Unicode: wherever data enters (a ``ctx`` write, a
parameter, a log line, an upload's name), a lone surrogate becomes U+FFFD and bytes that are
not UTF-8 decode with U+FFFD, so everything stored is valid UTF-8. The store keeps text raw
otherwise; escapes, colours and titles are made harmless only where text reaches a terminal.
"""

from __future__ import annotations

import re
from typing import Any

#: the longest log row, in UTF-8 bytes: longer output goes on in further rows
LOG_ROW_BYTES = 64 * 1024

# Lone surrogates: what decode("utf-8", "surrogateescape") or a JSON "\ud800" leave in a str.
_SURROGATES = re.compile("[\ud800-\udfff]")

# C0 controls but tab and newline, DEL, and the C1 controls (a terminal takes \x9b as CSI).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def utf8_pieces(data: bytes, limit: int) -> list[bytes]:
    """``data`` cut into pieces of at most ``limit`` (>= 4) bytes, never inside a UTF-8
    character (unless the bytes are not UTF-8 there). Always at least one piece."""
    pieces = []
    start = 0
    while len(data) - start > limit:
        cut = back = start + limit
        while back > cut - 3 and data[back] & 0xC0 == 0x80:
            back -= 1
        if data[back] & 0xC0 != 0x80:
            cut = back
        pieces.append(data[start:cut])
        start = cut
    pieces.append(data[start:])
    return pieces


def text_pieces(text: str, limit: int) -> list[str]:
    """``text`` cut into pieces of at most ``limit`` UTF-8 bytes, between characters."""
    if len(text) * 4 <= limit:
        return [text]
    return [piece.decode("utf-8") for piece in utf8_pieces(text.encode("utf-8"), limit)]


def clean_text(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD: valid Unicode, storable as UTF-8."""
    return _SURROGATES.sub("\ufffd", text) if _SURROGATES.search(text) else text


def clean_data(value: Any) -> Any:
    """JSON-like ``value`` with every str in it (keys too) passed through :func:`clean_text`;
    other values as they are. Cheap when there is nothing to clean."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_data(k): clean_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_data(item) for item in value]
    if isinstance(value, tuple):
        return tuple(clean_data(item) for item in value)
    return value


def visible(text: str) -> str:
    """``text`` for a terminal: each control character (ANSI colour and cursor sequences,
    terminal titles, clear-screen, bells, carriage returns) shown as a visible escape such
    as ``\\x1b``, so tool output cannot restyle or take over the user's terminal. Tabs and
    newlines stay as they are."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
