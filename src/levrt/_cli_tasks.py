"""The ``lev task`` subcommands: launch tasks on a server and follow them, over its JSON API.

They use the token ``lev login`` stored and the HTTP helpers of :mod:`levrt._cli_hub`
(``_chosen_hub``, ``_request``): private there, shared here on purpose so both halves of the
client speak to the server the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ._cli import EXIT_FAILED, EXIT_OK, CliError, _json_params, _prefixed, _status
from ._cli_hub import HTTP_TIMEOUT, HubRefused, _chosen_hub, _multipart, _request

_STATUSES = ("queued", "running", "done", "failed", "cancelled")


class _Server:
    """A server and the caller's token for it."""

    def __init__(self, server: str | None) -> None:
        self.url, self.token = _chosen_hub(server)

    def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """The JSON answer of a GET (a POST with ``body``) to ``path``; a refusal ends the
        command with the server's reason."""
        data = None if body is None else json.dumps(body).encode()
        return self._send(path, data, "application/json" if data is not None else None)

    def upload(self, path: Path) -> str:
        """Keep the local file ``path`` on the server for a ``File`` parameter; its digest."""
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise CliError(f"--file: cannot read {path}: {exc.strerror or exc}") from None
        body, content_type = _multipart([("file", path.name, "application/octet-stream",
                                          content)])
        digest: str = self._send("/api/tasks/files", body, content_type)["digest"]
        return digest

    def _send(self, path: str, data: bytes | None, content_type: str | None) -> Any:
        try:
            return _request(f"{self.url}{path}", token=self.token, data=data,
                            content_type=content_type)
        except HubRefused as exc:
            raise CliError(str(exc), EXIT_FAILED) from None

    def events(self, task_id: str) -> Iterator[tuple[str, Any]]:
        """The task's server-sent events as ``(event, data)``, until ``end``."""
        url = f"{self.url}/api/tasks/{urllib.parse.quote(task_id)}/events"
        request = urllib.request.Request(url, headers={
            "Accept": "text/event-stream", "Authorization": f"Bearer {self.token}"})
        try:
            # The server sends a keepalive comment every 15 s, well within the timeout.
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as stream:
                kind, data = "message", ""
                for raw in stream:
                    line = raw.decode("utf-8").rstrip("\r\n")
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data += line[5:].strip()
                    elif not line and data:
                        yield kind, json.loads(data)
                        kind, data = "message", ""
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read())["detail"]
            except (ValueError, KeyError, TypeError):
                detail = exc.reason
            raise CliError(str(detail), EXIT_FAILED) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"lost the server at {self.url}: {reason}", EXIT_FAILED) from None


def _print_log(row: dict[str, Any]) -> None:
    print("\n".join(_prefixed(row["run_id"], [row["text"]], terminal=sys.stdout.isatty())),
          flush=True)


def _task_path(task_id: str, rest: str = "") -> str:
    return f"/api/tasks/{urllib.parse.quote(task_id)}{rest}"


def _follow(server: _Server, task_id: str) -> int:
    """Print the task's log lines as they come; the exit code tells how it ended."""
    for kind, data in server.events(task_id):
        if kind == "log":
            _print_log(data)
        elif kind == "end":
            print(f"task {task_id} {data['status']}")
            if data["status"] != "done":
                raise CliError(f"task {task_id} {data['status']}: {data['error']}", EXIT_FAILED)
            return EXIT_OK
    raise CliError(f"the server ended the stream of task {task_id} early", EXIT_FAILED)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params = _json_params(args.params)
    for item in args.param or []:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise CliError(f"--param {item!r}: expected NAME=VALUE")
        # A string, as on lev run's command line: the task converts it by the type hints.
        params[key.replace("-", "_")] = value
    return params


def _cmd_submit(args: argparse.Namespace, extras: list[str]) -> int:
    params = _params(args)
    files = {}
    for item in args.file or []:
        key, equals, value = item.partition("=")
        if not equals or not key or not value:
            raise CliError(f"--file {item!r}: expected NAME=PATH")
        files[key.replace("-", "_")] = Path(value).expanduser()
    server = _Server(args.server)
    # Each file goes up first: the parameter's value is its digest on the server.
    params.update({name: server.upload(path) for name, path in files.items()})
    body: dict[str, Any] = {"target": args.target, "params": params}
    for key, value in (("name", args.name), ("version", args.version)):
        if value:
            body[key] = value
    answer = server.call("/api/tasks", body)
    print(f"task {answer['id']} submitted ({answer['status']})", flush=True)
    return _follow(server, answer["id"]) if args.follow else EXIT_OK


def _cmd_list(args: argparse.Namespace, extras: list[str]) -> int:
    filters = {"status": args.status, "q": args.search}
    query = urllib.parse.urlencode(
        {"limit": args.limit, **{key: value for key, value in filters.items() if value}})
    tasks = _Server(args.server).call(f"/api/tasks?{query}")
    if args.json:
        print(json.dumps(tasks, indent=2, ensure_ascii=False))
        return EXIT_OK
    console = Console()
    if not tasks:
        console.print(Text("no tasks", style="dim"))
        return EXIT_OK
    table = Table()
    for column in ("id", "name", "status", "progress", "owner", "created"):
        table.add_column(column, justify="right" if column == "progress" else "left")
    for task in tasks:
        table.add_row(task["id"], Text(task["name"]), _status(task["status"]),
                      f"{int(task['progress'] * 100)}%", task["owner"] or "",
                      (task["created"] or "")[:19].replace("T", " "))
    console.print(table)
    return EXIT_OK


def _cmd_show(args: argparse.Namespace, extras: list[str]) -> int:
    bundle = _Server(args.server).call(_task_path(args.id))
    if args.json:
        print(json.dumps(bundle, indent=2, ensure_ascii=False))
        return EXIT_OK
    job = bundle["job"]
    print(f"task {job['id']} {job['name']}: {job['status']} ({int(job['progress'] * 100)}%)")
    print(f"target {job['target']}  params {json.dumps(job['params'])}  owner {job['owner']}")
    if job["error"]:
        print(f"error: {job['error']}")
    for document in bundle["documents"]:
        print(f"document {document['coll']} (run {document['run_id']}): "
              f"{json.dumps(document['data'], ensure_ascii=False)}")
    return EXIT_OK


def _cmd_logs(args: argparse.Namespace, extras: list[str]) -> int:
    server = _Server(args.server)
    if args.follow:
        # The stream starts with every line so far, then the new ones as they come.
        for kind, data in server.events(args.id):
            if kind == "log":
                _print_log(data)
        return EXIT_OK
    after = 0
    while True:
        # Page by page, printed as they come: a huge log never sits in memory whole.
        rows = server.call(_task_path(args.id, f"/logs?after={after}"))
        if not rows:
            return EXIT_OK
        for row in rows:
            _print_log(row)
        after = rows[-1]["seq"]


def register(commands: Any) -> None:
    """Add ``lev task`` to ``lev``'s subparsers."""
    task = commands.add_parser(
        "task", help="launch tasks on a server and follow them",
        description="Run tools and workflows on a levrt server as tasks (jobs kept in the "
        "server's store), with the token lev login stored.")
    actions = task.add_subparsers(dest="task_command", metavar="ACTION", required=True)

    def server_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--server", metavar="URL",
                            help="the server (default: the last lev login)")

    submit = actions.add_parser(
        "submit", help="launch TARGET on the server",
        description="Launch TARGET, a tool mode or workflow published on the server's hub "
        "(lev.USER.TOOL:FUNCTION or its qualified name), as a task; an administrator may also "
        "give any target lev run takes there.")
    submit.add_argument("target", metavar="TARGET", help="what to run")
    submit.add_argument("--param", action="append", metavar="NAME=VALUE",
                        help="a parameter (repeatable; converted by the function's type hints)")
    submit.add_argument("--params", metavar="JSON",
                        help="parameters as a JSON object (--param values win)")
    submit.add_argument("--file", action="append", metavar="NAME=PATH",
                        help="a File parameter: the local file PATH, uploaded (repeatable)")
    submit.add_argument("--version", help="the published version to run (default: the latest)")
    submit.add_argument("--name", metavar="JOBNAME", help="job name (default: the function's)")
    submit.add_argument("--follow", action="store_true",
                        help="print the log until the task ends; fail unless it is done")
    server_option(submit)
    submit.set_defaults(handler=_cmd_submit)

    listing = actions.add_parser("list", help="list your tasks (an admin's: all), newest first")
    listing.add_argument("--status", choices=_STATUSES,
                         help="only tasks with this status")
    listing.add_argument("--search", metavar="TEXT",
                         help="only tasks whose name or target holds TEXT (any case)")
    listing.add_argument("--limit", type=int, default=20, metavar="N",
                         help="at most N (default 20)")
    listing.add_argument("--json", action="store_true", help="print the tasks as a JSON list")
    server_option(listing)
    listing.set_defaults(handler=_cmd_list)

    show = actions.add_parser("show", help="show a task: status, error, documents")
    show.add_argument("id", metavar="ID", help="the task's id")
    show.add_argument("--json", action="store_true",
                      help="print job, runs, documents and log as lev run --json does")
    server_option(show)
    show.set_defaults(handler=_cmd_show)

    logs = actions.add_parser("logs", help="print a task's log")
    logs.add_argument("id", metavar="ID", help="the task's id")
    logs.add_argument("--follow", action="store_true", help="keep printing until the task ends")
    server_option(logs)
    logs.set_defaults(handler=_cmd_logs)

