"""The platform server's settings: one pydantic-settings object, read from ``LEV_SERVER_*``
environment variables, else from the ``[server]`` table of ``$LEV_HOME/config.toml``::

    [server]
    host = "0.0.0.0"
    public_url = "https://hub.example.org"
    max_running_tasks = 4
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from levrt._config import ConfigError, config_path, read_config
from levrt.store import default_url

MiB = 1024 * 1024


class _ServerTable(PydanticBaseSettingsSource):
    """The ``[server]`` table of ``$LEV_HOME/config.toml`` (the runtime reads the rest)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ returns the whole table at once, as pydantic-settings allows.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = config_path()
        table = read_config(path).get("server", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: server must be a table ([server]), not {table!r}")
        return table


class Settings(BaseSettings):
    """Every field can be set with an environment variable ``LEV_SERVER_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="LEV_SERVER_", frozen=True, extra="forbid")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments, then the environment, then config.toml's [server] table, then defaults.
        return init_settings, env_settings, _ServerTable(settings_cls)

    # The runtime's store by default (LEV_DB_URL, else $LEV_HOME/levrt.db): the hub's tables
    # sit beside the jobs, so the platform shows packages and the tasks run from them together.
    db_url: str = Field(default_factory=default_url)
    # Loopback unless told otherwise: exposing a hub is a decision, not a default.
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    # One upload request (wheel + manifest); larger ones are refused while they stream in.
    max_upload_bytes: int = Field(20 * MiB, gt=0)
    # The wheel's members once unpacked: a small zip can hold gigabytes.
    max_unpacked_bytes: int = Field(100 * MiB, gt=0)
    # A package's manifest: every market page reads the latest ones.
    max_manifest_bytes: int = Field(1 * MiB, gt=0)
    # The URL clients reach this server at (behind a proxy); else taken from each request.
    public_url: str | None = None
    # What runs the tasks' tools: containers when a Docker API answers (as on the original
    # platform); "process" or "docker" to decide.
    executor: Literal["auto", "process", "docker"] = "auto"
    # Whether "auto" without an engine may run package code as plain processes of the
    # server's user: a decision, never a fallback (the task fails without it).
    allow_host_execution: bool = False
    # Failed log-ins (web page and API) allowed per user name and client address within the
    # window, in seconds (four times as many per address), before that name from that
    # address, or that address, must wait.
    login_max_failures: int = Field(5, ge=1)
    login_window: float = Field(900.0, ge=1)
    # Any JSON request body (a document a job writes, a batch of log lines...), refused
    # before it is read; a request without credentials may send 64 KiB.
    max_json_bytes: int = Field(64 * MiB, gt=0)
    # A task's parameters in all, as JSON: they sit in its job's record, read by every listing.
    max_params_bytes: int = Field(1 * MiB, gt=0)
    # Each task is a Python process with its tools under it: few at once by default.
    max_running_tasks: int = Field(2, ge=1)
    # Live task streams (task pages, lev task follow) one user may have open at once.
    max_event_streams: int = Field(20, ge=1)
    # Devices, schedules and notification hooks one user may have, of each: every page and
    # loop that reads them reads them all.
    max_per_user: int = Field(500, ge=1)
    # Time a cancelled lev run has to record the cancellation and stop its runs.
    cancel_grace: float = Field(10.0, gt=0)
    # The Temporal frontend (HOST:PORT) that agents connect to, told to them by this server;
    # None: agents need their own --temporal.
    temporal: str | None = Field(None, pattern=r"^\S+:\d{1,5}$")
