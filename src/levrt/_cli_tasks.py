"""The ``lev task`` subcommands: launch tasks on a server and follow them, through
:mod:`levrt.client` with the token ``lev login`` stored."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.text import Text

from ._cli_base import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    json_params,
    prefixed,
    print_listing,
    status_text,
)
from ._cli_hub import hub_client
from ._status import JOB_STATUSES
from .client import ApiError, Client

# A task's id: the job's, 12 hex digits (the server takes no prefix of one, unlike lev show).
_ID_LENGTH = 12


@contextmanager
def _task(task_id: str) -> Iterator[None]:
    """Say what to do when the server knows no task ``task_id`` because it is cut short."""
    try:
        yield
    except ApiError as exc:
        if exc.status == 404 and len(task_id) < _ID_LENGTH:
            raise CliError(f"no task {task_id!r}: give the task's whole id ({_ID_LENGTH} "
                           "characters; lev task list shows them)", EXIT_FAILED) from None
        raise


def _print_log(row: dict[str, Any]) -> None:
    print("\n".join(prefixed(row["run_id"], [row["text"]], terminal=sys.stdout.isatty())),
          flush=True)


def _follow(client: Client, task_id: str) -> int:
    """Print the task's log lines as they come; the exit code tells how it ended."""
    for kind, data in client.task_events(task_id):
        if kind == "log":
            _print_log(data)
        elif kind == "end":
            print(f"task {task_id} {data['status']}")
            if data["status"] != "done":
                raise CliError(f"task {task_id} {data['status']}: {data['error']}", EXIT_FAILED)
            return EXIT_OK
    raise CliError(f"the server ended the stream of task {task_id} early", EXIT_FAILED)


def placement_options(parser: argparse.ArgumentParser) -> None:
    """``--device NAME | --pool NAME [--spread]``: where a task runs."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--device", metavar="NAME",
                       help="run it on this device of yours (default: the server's runner)")
    where.add_argument("--pool", metavar="NAME",
                       help="run it on whichever device of this pool of yours is free first")
    parser.add_argument("--spread", action="store_true",
                        help="with --pool: spread the job's runs over the pool's agents too")


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params = json_params(args.params)
    for item in args.param or []:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise CliError(f"--param {item!r}: expected NAME=VALUE")
        # A string, as on lev run's command line: the task converts it by the type hints.
        params[key.replace("-", "_")] = value
    return params


def _upload(client: Client, path: Path) -> str:
    """Keep the local file ``path`` on the server for a ``File`` parameter; its digest."""
    try:
        digest: str = client.upload_file(path)["digest"]
    except OSError as exc:
        raise CliError(f"--file: cannot read {path}: {exc.strerror or exc}") from None
    return digest


def _cmd_submit(args: argparse.Namespace, extras: list[str]) -> int:
    if args.spread and not args.pool:
        raise CliError("--spread needs --pool NAME: the pool whose agents run the job's runs")
    params = _params(args)
    files = {}
    for item in args.file or []:
        key, equals, value = item.partition("=")
        if not equals or not key or not value:
            raise CliError(f"--file {item!r}: expected NAME=PATH")
        files[key.replace("-", "_")] = Path(value).expanduser()
    with hub_client(args.server) as client:
        # Each file goes up first: the parameter's value is its digest on the server.
        params.update({name: _upload(client, path) for name, path in files.items()})
        answer = client.submit_task(args.target, params, name=args.name or None,
                                    version=args.version or None, device=args.device,
                                    pool=args.pool, spread=args.spread)
        print(f"task {answer['id']} submitted ({answer['status']})", flush=True)
        return _follow(client, answer["id"]) if args.follow else EXIT_OK


def _cmd_list(args: argparse.Namespace, extras: list[str]) -> int:
    with hub_client(args.server) as client:
        tasks = client.list_tasks(status=args.status, q=args.search or None, limit=args.limit)
    return print_listing(
        tasks, as_json=args.json, what="tasks",
        columns=("id", "name", "status", "progress", "owner", "created"), right=("progress",),
        row=lambda task: (task["id"], Text(task["name"]), status_text(task["status"]),
                          f"{int(task['progress'] * 100)}%", task["owner"] or "",
                          (task["created"] or "")[:19].replace("T", " ")))


def _cmd_show(args: argparse.Namespace, extras: list[str]) -> int:
    with hub_client(args.server) as client, _task(args.id):
        bundle = client.get_task(args.id)
    if args.json:
        print(json.dumps(bundle, indent=2, ensure_ascii=False))
        return EXIT_OK
    job = bundle["job"]
    print(f"task {job['id']} {job['name']}: {job['status']} ({int(job['progress'] * 100)}%)")
    print(f"target {job['target']}  params {json.dumps(job['params'])}  owner {job['owner']}")
    if job.get("placement"):
        # driver is HOST:PID:START of the lev run that took it: the host says where it ran.
        ran = f", ran on host {job['driver'].split(':')[0]}" if job.get("driver") else ""
        print(f"sent to {job['placement'].replace(':', ' ', 1)}{ran}")
    if job["error"]:
        print(f"error: {job['error']}")
    for document in bundle["documents"]:
        print(f"document {document['coll']} (run {document['run_id']}): "
              f"{json.dumps(document['data'], ensure_ascii=False)}")
    return EXIT_OK


def _cmd_cancel(args: argparse.Namespace, extras: list[str]) -> int:
    with hub_client(args.server) as client, _task(args.id):
        answer = client.cancel_task(args.id)
    if answer["status"] == "cancelled":
        print(f"task {answer['id']} cancelled")
    else:
        # A running task stops when its driver (or its agent) hears of it: a moment later.
        print(f"task {answer['id']} is being cancelled (lev task show {answer['id']})")
    return EXIT_OK


def _cmd_logs(args: argparse.Namespace, extras: list[str]) -> int:
    with hub_client(args.server) as client, _task(args.id):
        if args.follow:
            # The stream starts with every line so far, then the new ones as they come.
            for kind, data in client.task_events(args.id):
                if kind == "log":
                    _print_log(data)
            return EXIT_OK
        # Page by page, printed as they come: a huge log never sits in memory whole.
        for row in client.iter_task_logs(args.id):
            _print_log(row)
    return EXIT_OK


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
    placement_options(submit)
    submit.add_argument("--follow", action="store_true",
                        help="print the log until the task ends; fail unless it is done")
    server_option(submit)
    submit.set_defaults(handler=_cmd_submit)

    listing = actions.add_parser("list", help="list your tasks (an admin's: all), newest first")
    listing.add_argument("--status", choices=JOB_STATUSES,
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

    cancel = actions.add_parser("cancel", help="cancel a queued or running task")
    cancel.add_argument("id", metavar="ID", help="the task's id")
    server_option(cancel)
    cancel.set_defaults(handler=_cmd_cancel)

