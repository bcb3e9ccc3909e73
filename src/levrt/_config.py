"""Settings: defaults, then ``$LEV_HOME/config.toml``, then ``LEV_*`` environment variables.

::

    # $LEV_HOME/config.toml
    executor = "auto"                  # process | docker | auto
    image_prefix = "registry.local/"   # what ".user.tool:tag" expands with
    run_timeout = 3600                 # seconds a run may take (0: no limit)
    memory = "2g"                      # memory limit per run
    cpus = 1.5                         # CPU limit per container
    log_max_bytes = 16777216           # log bytes kept per run: first and last half (0: all)
    sandbox = true                     # process executor: bubblewrap per run (false: opt out)

    [image_aliases]                    # rewrite image references (mirrors, test images)
    "localhost/lev-nmap:latest" = "localhost/lev-nmap:test"

The ``[server]`` table holds the platform server's settings (``levrt.server.settings``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

EXECUTORS = ("process", "docker", "auto", "temporal")


class ConfigError(ValueError):
    """A setting has a value levrt cannot use; the message names the setting and its source."""


@dataclass(frozen=True)
class Settings:
    executor: str = "process"
    image_prefix: str = "localhost/"
    image_aliases: dict[str, str] = field(default_factory=dict)
    run_timeout: float = 0.0
    memory: str | None = None
    cpus: float | None = None
    log_max_bytes: int = 16 * 1024 * 1024
    sandbox: bool = True

    def image(self, reference: str) -> str:
        """The reference to run: ``".user.tool:tag"`` expanded, then the alias map applied."""
        if reference in self.image_aliases:
            return self.image_aliases[reference]
        if reference.startswith("."):
            reference = f"{self.image_prefix}lev{reference}"
        return self.image_aliases.get(reference, reference)


def _home() -> Path:
    from .store import default_home

    return default_home()


def _coerce(name: str, value: Any, source: str) -> Any:
    try:
        if name == "executor":
            if value not in EXECUTORS:
                raise ValueError(f"choose one of {', '.join(EXECUTORS)}")
            return value
        if name == "image_aliases":
            value = json.loads(value) if isinstance(value, str) else value
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ValueError("expected a table of image reference → image reference")
            return dict(value)
        if name == "log_max_bytes":
            number = int(value)
            if number < 0 or 0 < number < 1024:
                raise ValueError("must be 0 (keep all) or at least 1024")
            return number
        if name in ("run_timeout", "cpus"):
            number = float(value)
            if number < 0:
                raise ValueError("must not be negative")
            return number
        if name == "sandbox":
            return _boolean(value)
        if name == "memory" and value is not None:
            memory_bytes(str(value))
        return str(value) if value is not None else None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {name} = {value!r}: {exc}") from None


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"expected true or false ({'/'.join(_TRUE)} or {'/'.join(_FALSE)})")


def memory_bytes(text: str) -> int:
    """Bytes in a memory size as Docker writes it: ``"512m"``, ``"2g"``, ``"1048576"``
    (units b, k, m, g, t of 1024; an optional trailing ``b`` as in ``"2gb"``).
    Raises ValueError for anything else."""
    size = text.strip().lower()
    if size.endswith("b") and size[-2:-1] in _UNITS and size[-2:-1]:
        size = size[:-1]
    number, unit = (size[:-1], size[-1]) if size[-1:] in _UNITS else (size, "")
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError("expected a size such as 512m or 2g") from None
    if value < 1:
        raise ValueError("must be positive")
    return int(value)


def config_path() -> Path:
    return _home() / "config.toml"


def read_config(path: Path) -> dict[str, Any]:
    """The TOML file at ``path`` as a dict, empty when there is no such file."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return data


def load_settings(path: Path | None = None) -> Settings:
    path = path or config_path()
    values: dict[str, Any] = {}
    known = {f.name for f in fields(Settings)}
    if path.exists():
        data = read_config(path)
        for name, value in data.items():
            if name == "server" and isinstance(value, dict):
                continue  # the platform server's own table
            if name not in known:
                raise ConfigError(f"{path}: unknown setting {name!r}; known: {', '.join(known)}")
            values[name] = _coerce(name, value, str(path))
    for name in known:
        env = f"LEV_{name.upper()}"
        if os.environ.get(env):
            values[name] = _coerce(name, os.environ[env], env)
    return Settings(**values)


def extra_hint(extra: str) -> str:
    """How to install levrt's optional ``extra`` (``agent``, ``postgres``...). Not "pip
    install 'levrt[...]'": PyPI's levrt is the original platform's SDK, not this one."""
    return f"pip install '.[{extra}]' in the clone levrt was installed from"
