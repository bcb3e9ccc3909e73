"""The ``lev`` command: run an exported function as a job, list jobs, show one.

``lev run TARGET --param VALUE ...`` imports TARGET, converts the options by the
function's type hints (:mod:`levrt._params`) and runs it with :func:`levrt.arun`
while a live display follows the job; ``lev jobs`` and ``lev show`` read the store.

Expected failures end with one ``lev: error: ...`` line on stderr and a non-zero
exit code, never a traceback: the job log (``lev show``) holds the details.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import reprlib
import signal
import sys
import sysconfig
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.pretty import Pretty
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from . import (
    __version__,
    _cli_agent,
    _cli_hub,
    _cli_packages,
    _cli_rows,
    _cli_schedule,
    _cli_tasks,
    _params,
    executors,
)
from ._cli_base import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    json_params,
    prefixed,
    print_listing,
    status_text,
)
from ._cli_hub import open_store
from ._config import EXECUTORS, ConfigError
from ._cr import Cr, TaskFailed
from ._job import JobListener, RunInfo, arun, current_job, exit_failure
from ._job_json import job_bundle, to_json
from ._remote import TransportError
from ._status import JOB_STATUSES
from .client import ApiError, ApiUnreachable, CredentialsError, JobStore, LoginRequired
from .executors import ExecutorError
from .store import StoreError

if TYPE_CHECKING:
    from .store import Store

LOG_LINES = 15
LIVE_RUNS = 10

_BOOL_WORDS = _params.TRUE_WORDS | _params.FALSE_WORDS
_LOG_SLOT = "\0log\0"
# levrt's own errors explain themselves; their type name would only be noise.
_SELF_EXPLAINED = (TaskFailed, ExecutorError, TransportError, StoreError)
_NOT_USER_CODE = tuple(
    {str(Path(__file__).resolve().parent) + os.sep}
    | {
        os.path.realpath(sysconfig.get_paths()[key]) + os.sep
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
    }
)
_NO_RESULT = object()

# Error messages quote the offending value; keep a huge one from flooding them.
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


# -- errors ------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def _user_location(tb: TracebackType | None) -> str | None:
    """``file:line`` of the innermost frame in the user's code (not levrt, not libraries)."""
    for frame in reversed(traceback.extract_tb(tb)):
        if frame.filename.startswith("<"):
            continue
        if not os.path.realpath(frame.filename).startswith(_NOT_USER_CODE):
            return f"{frame.filename}:{frame.lineno}"
    return None


def describe_error(exc: BaseException) -> str:
    """One line for ``exc``: its message, its type unless levrt's own, where the user's code was."""
    message = _first_line(exc)
    if not isinstance(exc, _SELF_EXPLAINED):
        message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    location = _user_location(exc.__traceback__)
    return f"{message} (at {location})" if location else message


# -- targets -----------------------------------------------------------------------------


@contextlib.contextmanager
def _importing(label: str) -> Iterator[None]:
    try:
        yield
    except ModuleNotFoundError as exc:
        hint = ""
        if label.startswith("lev.") and exc.name and f"{label}.".startswith(f"{exc.name}."):
            # The hub package itself is missing, not something it imports.
            hint = (" (a hub package: publish it to the server that runs the task, or lev "
                    "install it to run it here)")
        raise CliError(f"cannot import {label!r}: {exc}{hint}") from None
    except Exception as exc:
        # Anything the imported code raises at its top level.
        raise CliError(f"cannot import {label!r}: {describe_error(exc)}") from None


def _prepend_path(*folders: str) -> None:
    for folder in reversed(folders):
        if folder in sys.path:
            sys.path.remove(folder)
        sys.path.insert(0, folder)


def _import_module(name: str) -> ModuleType:
    with _importing(name):
        return importlib.import_module(name)


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    path = path.resolve()
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None:
        if getattr(loaded, "__file__", None) == str(path):
            return loaded
        raise CliError(
            f"cannot import {str(path)!r} as module {name!r}: a module of that name is already "
            f"loaded ({getattr(loaded, '__file__', None) or 'built in'}); rename the file"
        )
    # The file's folder goes on the path so that it can import the modules beside it.
    _prepend_path(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot import {str(path)!r}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as import does: entries are shipped by module name.
    sys.modules[name] = module
    try:
        with _importing(str(path)):
            spec.loader.exec_module(module)
    except CliError:
        del sys.modules[name]
        raise
    return module


def _hub_package(folder: Path) -> str:
    """Import name of a hub package folder, with it and its siblings put on ``sys.path``."""
    from .packages import PackageError
    from .packages.layout import hub_search_path

    try:
        name, path = hub_search_path(folder)
    except PackageError as exc:
        raise CliError(str(exc)) from None
    _prepend_path(*path)
    return name


def _attr_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part, _NO_RESULT)
        if obj is _NO_RESULT:
            break
    return obj


def _functions(module: ModuleType) -> list[str]:
    """Public callables the module (or its package) defines, and its submodules."""
    prefix = module.__name__
    found = set()
    for name, value in vars(module).items():
        origin = getattr(value, "__name__" if inspect.ismodule(value) else "__module__", "")
        mine = origin == prefix or str(origin).startswith(prefix + ".")
        if mine and not name.startswith("_") and (inspect.ismodule(value) or callable(value)):
            found.add(name)
    return sorted(found)


def _find(module: ModuleType, attr: str) -> Any:
    found = _attr_path(module, attr)
    if found is not _NO_RESULT or not hasattr(module, "__path__"):
        return found
    # A package's __init__ need not import everything: importing each submodule binds it
    # on the package (so "tool.mode" resolves), then search them one by one.
    submodules = [
        _import_module(f"{module.__name__}.{info.name}")
        for info in pkgutil.iter_modules(module.__path__)
    ]
    for candidate in (module, *submodules):
        found = _attr_path(candidate, attr)
        if found is not _NO_RESULT:
            return found
    return _NO_RESULT


def load_target(target: str) -> Callable[..., Any]:
    """The function ``module:function``, ``file.py:function`` or ``PACKAGE_DIR:function`` names."""
    where, colon, attr = target.rpartition(":")
    if not colon or not where or not attr:
        raise CliError(
            f"TARGET {target!r} must be module.path:function, path/to/file.py:function or "
            "PACKAGE_DIR:function"
        )
    folder = Path(where)
    if where.endswith(".py"):
        module = _import_file(folder)
    elif folder.is_dir() and ((folder / "lev").is_dir() or os.sep in where or "/" in where):
        module = _import_module(_hub_package(folder))
    else:
        _prepend_path(os.getcwd())
        module = _import_module(where)
    found = _find(module, attr)
    if found is _NO_RESULT:
        there = ", ".join(_functions(module)) or "no public functions"
        raise CliError(f"{module.__name__} has no {attr!r}; it has: {there}")
    if inspect.ismodule(found):
        modes = ", ".join(f"{attr}.{name}" for name in _functions(found)) or "nothing to run"
        raise CliError(f"{target} is a module, not a function; name one of: {modes}")
    if inspect.isclass(found) or not callable(found):
        what = f"the class {found.__name__}" if inspect.isclass(found) else (
            f"{type(found).__name__} {_short.repr(found)}")
        raise CliError(f"{target} is not a function: it is {what}")
    return found


# -- parameters from the command line ----------------------------------------------------


def option_values(tokens: Sequence[str], names: set[str], flags: set[str]) -> dict[str, Any]:
    """``--name VALUE`` options as raw values; a repeated option gives a list of strings.

    ``names`` are the function's parameters and ``flags`` its bool ones. A bare option
    that is neither (a ``**kwargs`` switch, or a typo :func:`_params.convert` reports)
    is taken as true.
    """
    values: dict[str, Any] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token.startswith("--") or token == "--":
            raise CliError(
                f"unexpected argument {token!r}: give parameters as --name VALUE after TARGET"
            )
        key, has_value, value = token[2:].partition("=")
        name = key.replace("-", "_")
        following = tokens[index] if index < len(tokens) else None
        if has_value:
            pass
        elif name in flags:
            if following is not None and following.lower() in _BOOL_WORDS:
                value, index = following, index + 1
            else:
                value = "true"
        elif name.startswith("no_") and name[3:] in flags:
            name, value = name[3:], "false"
        elif following is not None and not following.startswith("--"):
            value, index = following, index + 1
        elif name in names:
            flag = _params.option(name)
            raise _params.ParamError(
                name, f"needs a value: {flag} VALUE (or {flag}=VALUE when it starts with --)"
            )
        else:
            value = "true"
        if name in values:
            previous = values[name]
            values[name] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            values[name] = value
    return values


# -- formatting --------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _elapsed(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return ((end or datetime.now(timezone.utc)) - start).total_seconds()


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _runs_table(rows: list[tuple[int, str, str, int | None, float | None]]) -> Table:
    table = Table(title_justify="left", expand=False)
    for column in ("run", "name", "status", "exit", "time"):
        table.add_column(column, justify="right" if column in ("run", "exit", "time") else "left")
    for run_id, name, status, exit_code, seconds in rows:
        code = "-" if exit_code is None else str(exit_code)
        table.add_row(str(run_id), Text(name), status_text(status), code, _seconds(seconds))
    return table


class _Bytes:
    """Stands in for bytes in pretty output, which should show sizes, not contents."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __repr__(self) -> str:
        return f"<{self.size} bytes>"


def _shown(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return _Bytes(len(value))
    if isinstance(value, dict):
        return {key: _shown(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_shown(item) for item in value)
    return value


def print_bundle(store: Store, job_id: str, *, full_log: bool) -> None:
    """Print :func:`job_bundle` as JSON; with ``full_log`` its ``log`` holds every row,
    written page by page as it is read."""
    bundle = job_bundle(store, job_id)
    if not full_log:
        print(json.dumps(bundle, indent=2, ensure_ascii=False))
        return
    bundle["log_more"] = False
    head, tail = json.dumps({**bundle, "log": _LOG_SLOT}, indent=2,
                            ensure_ascii=False).split(json.dumps(_LOG_SLOT))
    sys.stdout.write(head + "[")
    separator = "\n    "
    for rows in store.log_pages(job_id):
        for row in rows:
            sys.stdout.write(separator + json.dumps(to_json(row), ensure_ascii=False))
            separator = ",\n    "
    sys.stdout.write("\n  ]" + tail + "\n")


def print_job(console: Console, store: Store, job_id: str, *, details: bool, log: bool,
              result: Any = _NO_RESULT) -> None:
    """The job for people: header, then (with ``details``) target, params, error and runs,
    then its documents, its log and the workflow's result."""
    job = store.get_job(job_id)
    if job is None:
        raise CliError(f"no job {job_id!r} in the store", EXIT_FAILED)
    console.print(Text.assemble(
        ("job ", "bold"), (job["id"], "bold cyan"), f"  {job['name']}  ",
        status_text(job["status"]),
        f"  {_seconds(_elapsed(job['created_at'], job['finished_at']))}",
    ))
    if details:
        facts = {"target": job["target"], "params": job["params"], "executor": job["executor"],
                 "started": _when(job["created_at"])}
        for label, value in facts.items():
            if value:
                console.print(Text.assemble((f"{label}: ", "dim"), str(value)))
        if job["error"]:
            console.print(Text(job["error"], style="red"))
        runs = store.list_runs(job_id)
        if runs:
            console.print(_runs_table([
                (run["run_id"], run["name"], run["status"], run["exit_code"],
                 _elapsed(run["started_at"], run["finished_at"]))
                for run in runs
            ]))
    documents = store.list_documents(job_id)
    if not documents:
        console.print(Text("no documents", style="dim"))
    for document in documents:
        owner = "job" if document["run_id"] is None else f"run {document['run_id']}"
        console.print(Text(f"{document['coll']} · {owner}", style="bold"))
        console.print(Pretty(_shown(document["data"])))
    if log:
        console.print(Text("log", style="bold"))
        for rows in store.log_pages(job_id):
            lines = [line for row in rows for line in prefixed(
                row["run_id"], [row["text"]], terminal=console.is_terminal)]
            console.print(Text("\n".join(lines)), soft_wrap=True)
    if result is not _NO_RESULT and result is not None:
        console.print(Text("result", style="bold"))
        console.print(Pretty(_shown(result)))


# -- following a running job -------------------------------------------------------------


class _Clock:
    """Wall time of each run, measured here because listeners get no timestamps."""

    def __init__(self) -> None:
        self._started: dict[int, float] = {}
        self._ended: dict[int, float] = {}

    def start(self, run_id: int) -> None:
        self._started[run_id] = time.monotonic()

    def stop(self, run_id: int) -> None:
        self._ended[run_id] = time.monotonic()

    def elapsed(self, run_id: int) -> float | None:
        started = self._started.get(run_id)
        if started is None:
            return None
        return self._ended.get(run_id, time.monotonic()) - started


class PlainDisplay:
    """Follows a job with one line per event, for logs and pipes."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._terminal = stream.isatty()
        self._lock = threading.Lock()
        self._clock = _Clock()
        self._percent = 0

    def _write(self, lines: list[str]) -> None:
        with self._lock:
            self._stream.write("".join(line + "\n" for line in lines))
            self._stream.flush()

    def run_started(self, run: RunInfo) -> None:
        self._clock.start(run.run_id)
        self._write([f"[run {run.run_id} {run.name}] started"])

    def run_finished(self, run: RunInfo) -> None:
        self._clock.stop(run.run_id)
        facts = ([] if run.exit_code is None else [f"exit {run.exit_code}"])
        facts.append(_seconds(self._clock.elapsed(run.run_id)))
        word = "finished" if run.status == "done" else run.status
        line = f"[run {run.run_id} {run.name}] {word} ({', '.join(facts)})"
        if run.error and run.error != run.status:
            line += f": {run.error.splitlines()[0]}"
        self._write([line])

    def log(self, run_id: int | None, stream: str, lines: list[str]) -> None:
        self._write(prefixed(run_id, lines, terminal=self._terminal))

    def progress(self, value: float) -> None:
        percent = int(value * 100)
        if percent != self._percent:
            self._percent = percent
            self._write([f"[job] progress {percent}%"])


class LiveDisplay:
    """Follows a job on a terminal: the runs, a progress bar and the last log lines."""

    def __init__(self, console: Console) -> None:
        self._lock = threading.Lock()
        self._clock = _Clock()
        self._runs: dict[int, RunInfo] = {}
        self._logs: deque[str] = deque(maxlen=LOG_LINES)
        self._progress = 0.0
        self.live = Live(self, console=console, refresh_per_second=8)

    def run_started(self, run: RunInfo) -> None:
        with self._lock:
            self._clock.start(run.run_id)
            self._runs[run.run_id] = run

    def run_finished(self, run: RunInfo) -> None:
        with self._lock:
            self._clock.stop(run.run_id)

    def log(self, run_id: int | None, stream: str, lines: list[str]) -> None:
        with self._lock:
            self._logs.extend(prefixed(run_id, lines, terminal=True))

    def progress(self, value: float) -> None:
        with self._lock:
            self._progress = value

    def __rich__(self) -> RenderableType:
        with self._lock:
            runs = list(self._runs.values())
            # A wide fan-out would push everything else off the screen: show the runs
            # still going first, then the latest finished, and count them all.
            going = [run for run in runs if run.status == "running"]
            ended = [run for run in reversed(runs) if run.status != "running"]
            shown = sorted((going + ended)[:LIVE_RUNS], key=lambda run: run.run_id)
            table = _runs_table([
                (run.run_id, run.name, run.status, run.exit_code, self._clock.elapsed(run.run_id))
                for run in shown
            ])
            if runs:
                counts = Counter(run.status for run in runs)
                table.caption = f"{len(runs)} runs: " + ", ".join(
                    f"{count} {status}" for status, count in counts.items()
                )
            bar = Table.grid(padding=(0, 1))
            bar.add_row(ProgressBar(total=1.0, completed=self._progress, width=40),
                        f"{int(self._progress * 100)}%")
            logs = Text("\n".join(self._logs), no_wrap=True, overflow="ellipsis")
        return Group(table, bar, logs)


def _debugging(args: argparse.Namespace,
               executor: executors.Executor) -> contextlib.AbstractContextManager[Any]:
    """``--debug``: the relay that gives breakpoints in entries this terminal."""
    if not args.debug:
        return contextlib.nullcontext()
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("lev: --debug needs a terminal on stdin and stdout: breakpoints are skipped",
              file=sys.stderr)
        return contextlib.nullcontext()
    from ._debug import SOCKET_NAME, DebugRelay
    from .shim.entry import install_breakpoints

    relay = DebugRelay()
    executor.debug_dir = relay.directory
    # The relay reads the terminal now: the workflow's own breakpoints must go through it too.
    install_breakpoints(os.path.join(relay.directory, SOCKET_NAME))
    return relay


def _display(args: argparse.Namespace) -> tuple[list[JobListener],
                                                contextlib.AbstractContextManager[Any]]:
    if args.quiet:
        return [], contextlib.nullcontext()
    # A live display would redraw over a debugger's prompt.
    if sys.stderr.isatty() and not args.json and not args.debug:
        live = LiveDisplay(Console(stderr=True))
        return [live], live.live
    return [PlainDisplay(sys.stderr)], contextlib.nullcontext()


# -- commands ----------------------------------------------------------------------------


class _JobBody:
    """The job's coroutine: calls the function inside the job, so that everything it does,
    building a tool's ``Cr`` included, counts as the job's work."""

    def __init__(self, func: Callable[..., Any], values: dict[str, Any]) -> None:
        self.func = func
        self.values = values
        self.job_id = ""  # known once the job has begun
        self.ran_tool = False

    async def __call__(self) -> Any:
        self.job_id = current_job().id
        outcome = self.func(**self.values)
        if not inspect.isawaitable(outcome):
            raise TypeError(
                f"{_params.name_of(self.func)} returned {type(outcome).__name__}, not a Cr: "
                "lev run runs async workflows and tool modes that return a Cr"
            )
        # A coroutine that returns a Cr (a mode written `async def m() -> Cr`) runs it too.
        while inspect.isawaitable(outcome) and not isinstance(outcome, Cr):
            outcome = await outcome
        if isinstance(outcome, Cr):
            self.ran_tool = True
            document = await outcome
            return await document.get()
        return outcome


def _print_params(console: Console, func: Callable[..., Any]) -> None:
    table = Table(title=f"parameters of {_params.name_of(func)}", title_justify="left")
    for column in ("option", "type", "default", "description"):
        table.add_column(column)
    try:
        params = _params.describe(func)
    except TypeError as exc:  # unresolvable annotations
        raise CliError(str(exc)) from None
    for param in params:
        default = "(required)" if param["required"] else repr(param["default"])
        table.add_row(_params.option(param["name"]), param["type"] or "", default,
                      param["desc"] or "")
    console.print(table)
    shadowed = sorted(_shadowed(func))
    if shadowed:
        console.print(Text(
            f"After TARGET, {', '.join(shadowed)} set parameters of {_params.name_of(func)}; "
            "lev run's own options of those names go before TARGET "
            f"(lev run {shadowed[0]} ... TARGET ...).", style="yellow"))


# lev run's own options: (flags, argparse keywords).
_RUN_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--params",), {"metavar": "JSON", "help": "parameters as a JSON object (options given "
                     "explicitly win)"}),
    (("--executor",), {"metavar": "NAME", "help": "run the tools with this executor: "
                       f"{', '.join(EXECUTORS)} (default: LEV_EXECUTOR, else executor in "
                       "$LEV_HOME/config.toml, else process)"}),
    (("--name",), {"metavar": "JOBNAME", "help": "job name (default: the function's)"}),
    (("--job",), {"metavar": "ID", "help": "run the store's queued job ID, with the parameters "
                  "it records, instead of recording a new one (what the server's task runner "
                  "does)"}),
    (("--json",), {"action": "store_true", "help": "print the job, runs, documents, the log's tail "
                   "and result as one JSON object"}),
    (("-q", "--quiet"), {"action": "store_true", "help": "do not follow the job live"}),
    (("--debug",), {"action": "store_true", "help": "stop at breakpoint() / pdb.set_trace() in "
                    "entries, with pdb on this terminal (one run at a time); without it they "
                    "are skipped with a log line"}),
    (("-h", "--help"), {"action": "store_true", "help": "show this help and exit"}),
]


def _run_options(parser: argparse.ArgumentParser, shadowed: frozenset[str] = frozenset()) -> None:
    """lev run's own options on ``parser``, but for the long spellings in ``shadowed``: the
    function has parameters of those names, and after TARGET they are its."""
    for flags, spec in _RUN_OPTIONS:
        kept = [flag for flag in flags if flag not in shadowed]
        if kept:
            parser.add_argument(*kept, dest=flags[-1].lstrip("-"), **spec)


def _shadowed(func: Callable[..., Any]) -> frozenset[str]:
    """lev run's long options that name parameters of ``func`` (dashes or underscores)."""
    names = {_params.option(name) for name in inspect.signature(func).parameters}
    return frozenset(flag for flags, _ in _RUN_OPTIONS for flag in flags if flag in names)


def _after_target(args: argparse.Namespace, func: Callable[..., Any]) -> list[str]:
    """lev run's options after TARGET set on ``args`` (the function's parameters of the same
    name left out); the tokens left: the function's parameters."""
    parser = argparse.ArgumentParser(prog="lev run", add_help=False, allow_abbrev=False,
                                     exit_on_error=False)
    _run_options(parser, _shadowed(func))
    try:
        _, extras = parser.parse_known_args(args.rest, namespace=args)
    except argparse.ArgumentError as exc:
        raise CliError(str(exc)) from None
    return extras


def _values(args: argparse.Namespace, extras: list[str], func: Callable[..., Any],
            store: Store) -> dict[str, Any]:
    """The function's arguments: from ``--params`` and the options after TARGET, or, with
    ``--job``, those the queued job records (as the server converted them)."""
    try:
        if args.job is None:
            names = set(inspect.signature(func).parameters)
            raw = {**json_params(args.params),
                   **option_values(extras, names, _params.flags(func))}
            return _params.convert(func, raw, store=store)
        if args.params is not None or extras:
            raise CliError("--job runs the parameters its job records: give no --params or "
                           "parameter options with it")
        job = store.get_job(args.job)
        if job is None:
            raise CliError(f"no job {args.job!r} in the store", EXIT_FAILED)
        # A published package's task was converted by its manifest's types: a string there
        # stays a string. Another target (an administrator's) is converted now, by the
        # server's rules: no path of this machine is ever read for a task.
        origin = _params.CONVERTED if job["package"] else _params.SERVER
        return _params.convert(func, dict(job["params"] or {}), store=store, origin=origin)
    except (_params.ParamError, TypeError) as exc:  # TypeError: unresolvable annotations
        raise CliError(str(exc)) from None


def _cmd_run(args: argparse.Namespace, extras: list[str]) -> int:
    if args.target is None:
        if args.help:
            args.parser.print_help()
            return EXIT_OK
        raise CliError("lev run needs a TARGET (module:function, file.py:function or "
                       "PACKAGE_DIR:function); see lev run --help")
    func = load_target(args.target)
    extras = _after_target(args, func) + extras
    if args.help:
        args.parser.print_help()
        _print_params(Console(), func)
        return EXIT_OK
    with _job_store(args) as store:
        return _run_job(args, func, _values(args, extras, func, store), store)


def _job_store(args: argparse.Namespace) -> Any:
    """The store ``lev run`` records its job in: with ``--job`` and the job token the
    server's runner gave (``LEV_JOB_TOKEN``), that one job's store through the server's API
    (:class:`levrt.client.JobStore`), the package code in this process reaching nothing else;
    otherwise the store of ``LEV_DB_URL`` / ``LEV_HOME``."""
    if args.job is None or "LEV_JOB_TOKEN" not in os.environ:
        return open_store()

    try:
        return JobStore.from_env(args.job)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _run_job(args: argparse.Namespace, func: Callable[..., Any], values: dict[str, Any],
             store: Store) -> int:
    try:
        executor = executors.create(args.executor, "--executor")
    except ExecutorError as exc:
        raise CliError(str(exc)) from None
    body = _JobBody(func, values)
    listeners, display = _display(args)
    if args.job and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # The driver of a server's or an agent's job, which cancels it with SIGINT: a server
        # started in the background of a shell (`lev serve &`) passes SIGINT on ignored, and
        # asyncio turns SIGINT into a cancellation only where Python's own handler is set.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    result: Any = _NO_RESULT
    failure: BaseException | None = None
    try:
        with display, _debugging(args, executor):
            result = asyncio.run(arun(
                body(), args.name or _params.name_of(func), store=store, executor=executor,
                listeners=listeners, echo=False, target=args.target,
                params=_params.jsonable(values), job_id=args.job,
            ))
    except BaseException as exc:  # Ctrl-C too: arun has recorded the job as cancelled
        if not body.job_id:
            # The job never began (its record could not be written, ...): nothing to show.
            if isinstance(exc, Exception):
                raise CliError(describe_error(exc), EXIT_FAILED) from None
            raise
        failure = exc
    if isinstance(store, JobStore):
        pass  # the job's token died with it: nothing of it can be read now, nor is needed
    elif args.json:
        bundle = job_bundle(store, body.job_id, None if result is _NO_RESULT else result)
        print(json.dumps(bundle, indent=2, ensure_ascii=False))
    else:
        # A tool mode's result is its run's document, already printed.
        shown = _NO_RESULT if body.ran_tool else result
        print_job(Console(), store, body.job_id, details=False, log=False, result=shown)
    if isinstance(failure, KeyboardInterrupt):
        print(f"lev: job {body.job_id} cancelled (interrupted)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(failure, SystemExit):
        print(f"lev: error: job {body.job_id} failed: {exit_failure(failure)}", file=sys.stderr)
        return EXIT_FAILED
    if failure is not None:
        print(f"lev: error: job {body.job_id} failed: {describe_error(failure)}",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _cmd_jobs(args: argparse.Namespace, extras: list[str]) -> int:
    with open_store() as store:
        jobs = store.list_jobs(limit=args.limit, status=args.status)
    # JSON of the jobs as the API gives them; the table reads the store's own values.
    return print_listing(
        to_json(jobs) if args.json else jobs, as_json=args.json, what="jobs",
        columns=("id", "name", "status", "progress", "started", "time"),
        right=("progress", "time"),
        row=lambda job: (job["id"], Text(job["name"]), status_text(job["status"]),
                         f"{int(job['progress'] * 100)}%", _when(job["created_at"]),
                         _seconds(_elapsed(job["created_at"], job["finished_at"]))))


def _cmd_show(args: argparse.Namespace, extras: list[str]) -> int:
    if args.table or args.csv:
        return _cli_rows.show_rows(args.job, csv=args.csv, coll=args.coll)
    if args.coll is not None:
        raise CliError("--coll goes with --table or --csv")
    with open_store() as store:
        try:
            job_id = store.resolve_job(args.job)
        except LookupError as exc:
            raise CliError(str(exc), EXIT_FAILED) from None
        if args.json:
            print_bundle(store, job_id, full_log=args.log)
        else:
            print_job(Console(), store, job_id, details=True, log=args.log)
    return EXIT_OK


def _cmd_image_build(args: argparse.Namespace, extras: list[str]) -> int:
    from .executors.docker import build_image

    console = Console(stderr=True)
    try:
        tags = build_image(Path(args.package_dir), args.tag,
                           progress=lambda line: console.print(Text(line, style="dim")))
    except ExecutorError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    print("\n".join(tags))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lev", description="Run levrt tools and workflows as jobs and browse their results."
    )
    parser.add_argument("--home", metavar="DIR",
                        help="keep jobs and results in DIR (sets LEV_HOME; LEV_DB_URL still wins)")
    parser.add_argument("--version", action="version", version=f"lev {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run", add_help=False, allow_abbrev=False,
        help="run a workflow or a tool mode as a job",
        description="Run TARGET as a job. TARGET is module.path:function, "
        "path/to/file.py:function or PACKAGE_DIR:function (a hub package folder "
        "<user>.<tool>; its sibling package folders are importable too).",
        epilog="Any other --name VALUE after TARGET is a parameter of the function (dashes or "
        "underscores; repeat it or use commas for a list; a bare --flag or --no-flag for a "
        "bool). After TARGET a parameter wins over the option of lev run of the same name "
        "(--name, --json, ...); before TARGET every option is lev run's. "
        "lev run TARGET --help lists the function's parameters and says which they take over.",
    )
    _run_options(run)
    run.add_argument("target", nargs="?", metavar="TARGET", help="what to run (see above)")
    run.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    run.set_defaults(handler=_cmd_run, parser=run)

    jobs = commands.add_parser("jobs", help="list jobs, newest first")
    jobs.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (default 20)")
    jobs.add_argument("--status", choices=JOB_STATUSES, help="only jobs with this status")
    jobs.add_argument("--json", action="store_true", help="print the jobs as a JSON list")
    jobs.set_defaults(handler=_cmd_jobs)

    show = commands.add_parser("show", help="show a job: runs, documents, log")
    show.add_argument("job", metavar="JOB", help="job id or a unique prefix of it")
    show.add_argument("--json", action="store_true", help="print it all as one JSON object")
    show.add_argument("--log", action=argparse.BooleanOptionalAction, default=True,
                      help="include the job log (default: yes)")
    shape = show.add_mutually_exclusive_group()
    shape.add_argument("--table", action="store_true",
                       help="only the results, as rows: one per innermost record")
    shape.add_argument("--csv", action="store_true", help="only the results' rows, as CSV")
    show.add_argument("--coll", metavar="NAME", help="with --table/--csv: only this collection")
    show.set_defaults(handler=_cmd_show)

    image = commands.add_parser("image", help="build tool images")
    image_commands = image.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    build = image_commands.add_parser(
        "build", help="build a package's Dockerfile through the Docker API",
        description="Build PACKAGE_DIR/Dockerfile and tag it <prefix>lev.<user>.<tool>:<version> "
        "(from its pyproject.toml; the prefix is image_prefix, default localhost/).")
    build.add_argument("package_dir", metavar="PACKAGE_DIR", help="a package folder user.tool")
    build.add_argument("--tag", action="append", metavar="REF",
                       help="another tag to give the image (repeatable)")
    build.set_defaults(handler=_cmd_image_build)

    _cli_packages.register(commands)
    _cli_hub.register(commands)
    _cli_tasks.register(commands)
    _cli_agent.register(commands)
    _cli_schedule.register(commands)
    _cli_rows.register(commands)
    return parser


def cli_main(argv: Sequence[str] | None = None,
             parser: argparse.ArgumentParser | None = None) -> int:
    """Run ``lev`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code;
    ``parser``: one :func:`build_parser` made ahead (a driver started ahead of its job)."""
    parser = parser or build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
    except SystemExit as exc:  # argparse has printed usage or --version
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if extras and args.command != "run":
        parser.print_usage(sys.stderr)
        print(f"lev: error: unrecognized arguments: {' '.join(extras)}", file=sys.stderr)
        return EXIT_USAGE
    if args.home:
        os.environ["LEV_HOME"] = args.home
    try:
        return int(args.handler(args, extras))
    except CliError as exc:
        print(f"lev: error: {exc}", file=sys.stderr)
        return exc.code
    except ApiUnreachable as exc:
        print(f"lev: error: cannot reach the hub at {exc.url}: {exc.reason}", file=sys.stderr)
        return EXIT_FAILED
    except (LoginRequired, ConfigError) as exc:  # before ApiError: LoginRequired is one
        print(f"lev: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ApiError, CredentialsError, StoreError) as exc:
        print(f"lev: error: {_first_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("lev: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(parser: argparse.ArgumentParser | None = None) -> None:
    try:
        code = cli_main(parser=parser)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (`| head`) has gone; Python would complain again when it flushes at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_FAILED
    if sys.argv[1:2] == ["run"] and "--job" in sys.argv:
        # A job's driver (a server's or an agent's) has recorded its job and closed its
        # store. Python's finalization, tearing down every module it imported, kept its
        # runner or agent from seeing it end for 70-180 ms more (bench/dispatch.py).
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
