"""What can be wrong with a package: `PackageError` (stops an operation) and `Problem`
(one finding of ``lev check``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["Level", "PackageError", "Problem", "located", "output_tail"]

Level = Literal["error", "warning"]


def located(message: str, file: str | None, line: int | None) -> str:
    """``file:line: message`` the way compilers write it, so editors can jump there."""
    if file is None:
        return message
    return f"{file}:{line}: {message}" if line is not None else f"{file}: {message}"


def output_tail(text: str, lines: int = 10) -> str:
    """``; its last output:`` and the last non-blank `lines` of a subprocess's output, to
    end an error message with (empty when there was none)."""
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return ("; its last output:\n" + "\n".join(kept)) if kept else ""


class PackageError(ValueError):
    """A package cannot be read, imported, scaffolded or built.

    ``file`` (relative to the package folder when it lies inside it) and ``line`` say
    where, when that is known; ``str()`` puts them in front of the message.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        return located(self.message, self.file, self.line)


@dataclass(frozen=True)
class Problem:
    """One finding of ``lev check``; ``code`` is a stable short name for filtering."""

    level: Level
    file: str | None
    line: int | None
    code: str
    message: str

    def __str__(self) -> str:
        return located(f"{self.level}: {self.message}", self.file, self.line)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
