"""The ``lev schedule`` subcommands: tasks a server submits on its own at the slots of a cron
expression or an interval (docs/schedules.md), through :mod:`levrt.client`."""

from __future__ import annotations

import argparse
from typing import Any

from rich.text import Text

from ._cli_base import EXIT_OK, CliError, print_listing
from ._cli_hub import hub_client
from ._cli_tasks import _params, placement_options
from .client import ApiError


def _when(schedule: dict[str, Any]) -> str:
    timing = schedule["cron"] or f"every {schedule['interval_seconds']} s"
    return f"{timing} ({schedule['timezone']})"


def _cmd_add(args: argparse.Namespace, extras: list[str]) -> int:
    if (args.cron is None) == (args.every is None):
        raise CliError("give either --cron EXPR or --every SECONDS")
    with hub_client(args.server) as client:
        made = client.add_schedule(args.name, args.target, _params(args), cron=args.cron,
                                   interval=args.every, timezone=args.timezone,
                                   version=args.version, device=args.device,
                                   pool=args.pool, spread=args.spread)
    print(f"schedule {made['name']} added: next at {made['next_fire'][:19].replace('T', ' ')} "
          f"UTC, {_when(made)}")
    return EXIT_OK


def _cmd_list(args: argparse.Namespace, extras: list[str]) -> int:
    with hub_client(args.server) as client:
        schedules = client.list_schedules()
    return print_listing(
        schedules, as_json=args.json, what="schedules",
        columns=("name", "target", "when", "next (UTC)", "state"),
        row=lambda schedule: (
            schedule["name"], Text(schedule["target"]), Text(_when(schedule)),
            "" if schedule["paused"] else schedule["next_fire"][:16].replace("T", " "),
            "paused" if schedule["paused"] else "active"))


def _one(action: str) -> Any:
    def handler(args: argparse.Namespace, extras: list[str]) -> int:
        with hub_client(args.server) as client:
            try:
                if action == "rm":
                    client.remove_schedule(args.name)
                else:
                    client.pause_schedule(args.name, action == "pause")
            except ApiError as exc:
                if exc.status == 404:
                    raise CliError(f"you have no schedule {args.name!r} (lev schedule list)",
                                   1) from None
                raise
        print(f"schedule {args.name} {'removed' if action == 'rm' else action + 'd'}")
        return EXIT_OK
    return handler


def register(commands: Any) -> None:
    """Add ``lev schedule`` to ``lev``'s subparsers."""
    schedule = commands.add_parser(
        "schedule", help="tasks a server runs on its own, by cron or interval",
        description="Schedules: a server submits the task at each slot of a cron expression "
        "(read in a time zone) or every interval; a slot missed while no server ran fires "
        "once, at the next start.")
    actions = schedule.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)

    def server_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--server", metavar="URL",
                            help="the server (default: the last lev login)")

    add = actions.add_parser("add", help="schedule TARGET as NAME")
    add.add_argument("name", metavar="NAME", help="the schedule's name, also its jobs'")
    add.add_argument("target", metavar="TARGET", help="a published tool mode or workflow")
    add.add_argument("--cron", metavar="EXPR", help="five cron fields, e.g. '0 3 * * *'")
    # --interval: the API's and the docs' word for it.
    add.add_argument("--every", "--interval", dest="every", type=int, metavar="SECONDS",
                     help="an interval (at least 60)")
    add.add_argument("--timezone", default="UTC", metavar="ZONE",
                     help="the IANA zone the cron expression is read in (default UTC)")
    add.add_argument("--param", action="append", metavar="NAME=VALUE",
                     help="a parameter (repeatable)")
    add.add_argument("--params", metavar="JSON", help="parameters as a JSON object")
    add.add_argument("--version", help="the published version (default: the latest now)")
    placement_options(add)
    server_option(add)
    add.set_defaults(handler=_cmd_add)

    listing = actions.add_parser("list", help="list your schedules")
    listing.add_argument("--json", action="store_true", help="print them as a JSON list")
    server_option(listing)
    listing.set_defaults(handler=_cmd_list)

    for action, text in (("pause", "stop firing NAME until resumed"),
                         ("resume", "fire NAME again from its next slot"),
                         ("rm", "remove NAME (its tasks stay)")):
        parser = actions.add_parser(action, help=text)
        parser.add_argument("name", metavar="NAME")
        server_option(parser)
        parser.set_defaults(handler=_one(action))
