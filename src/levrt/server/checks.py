"""Bounds on the JSON values users send (task parameters, API bodies, manifests).

Python's JSON parser takes values nested up to about a thousand levels, and strings holding
lone surrogates (``"\\ud800"``), which are not Unicode: the first exhaust the recursion of
whatever walks them later (a converter, an encoder, a template), the second fail wherever text
is encoded (a password hash, the database, a page). Both are refused where they come in, with
the place they were found, so the answer is a 4xx naming the field instead of a 500.
"""

from __future__ import annotations

from typing import Any

# Deeper than any parameter or manifest a tool needs, far below the recursion limit.
MAX_DEPTH = 64


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def json_problem(value: Any, max_depth: int = MAX_DEPTH, *, text: bool = True) -> str | None:
    """What makes ``value`` (parsed JSON) unacceptable, with where it was found (``[0]
    ["a"]``, empty for the value itself), or None: nesting deeper than ``max_depth`` lists
    and objects, or (with ``text``) text, a string or a key, that is not Unicode."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if text and _has_surrogate(item):
                at = f" at {where}" if where else ""
                return f"the text{at} is not Unicode (a lone surrogate)"
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth >= max_depth:
            return f"nested deeper than {max_depth} levels (at {where})"
        if isinstance(item, dict):
            for key, child in item.items():
                if text and isinstance(key, str) and _has_surrogate(key):
                    return (f"the key {key.encode('utf-8', 'replace').decode()!r}"
                            f"{' at ' + where if where else ''} is not Unicode (a lone surrogate)")
                stack.append((child, f"{where}[{key!r}]", depth + 1))
        else:
            stack.extend((child, f"{where}[{index}]", depth + 1)
                         for index, child in enumerate(item))
    return None


def check_json(value: Any, *, text: bool = True) -> Any:
    """``value`` when :func:`json_problem` finds nothing; ValueError saying what it found
    (a pydantic validator: FastAPI answers 422 naming the field)."""
    problem = json_problem(value, text=text)
    if problem is not None:
        raise ValueError(problem)
    return value
