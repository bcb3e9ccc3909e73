"""The `lev` subcommands for devices: ``lev device add|list|remove`` (as a user, through the
login ``lev login`` kept) and ``lev agent`` (on the device's machine, as the device)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any

from ._cli_base import EXIT_FAILED, EXIT_OK, CliError
from ._config import extra_hint
from .client import ApiError, Client, CredentialsError, LoginRequired

if TYPE_CHECKING:
    from .agent import Agent


def _user_client(server: str | None) -> Client:
    try:
        return Client.from_config(server)
    except LoginRequired as exc:
        raise CliError(str(exc)) from None
    except (CredentialsError, ValueError) as exc:
        raise CliError(str(exc), EXIT_FAILED) from None


def _call(server: str | None, method: str, path: str, **kwargs: Any) -> Any:
    with _user_client(server) as client:
        try:
            answer = client.request(method, path, **kwargs)
        except ApiError as exc:
            raise CliError(str(exc), EXIT_FAILED) from None
    return answer.json() if answer.content else None


def _cmd_device_add(args: argparse.Namespace, extras: list[str]) -> int:
    added = _call(args.server, "POST", "/api/devices",
                  json={"name": args.name, "pools": args.pool or []})
    pools = f" in pools {', '.join(added['pools'])}" if added["pools"] else ""
    print(f"device {added['name']}{pools} added. On its machine, before "
          f"{added['code_expires_at']} (the code works once, and is shown only now), run:",
          file=sys.stderr)
    print(added["command"])
    return EXIT_OK


def _cmd_device_list(args: argparse.Namespace, extras: list[str]) -> int:
    devices = _call(args.server, "GET", "/api/devices")
    if args.json:
        print(json.dumps(devices, indent=2))
        return EXIT_OK
    rows = [("NAME", "KIND", "STATUS", "POOLS", "EXECUTOR", "LOAD", "LAST SEEN")]
    for device in devices:
        if device["kind"] == "agent":
            # An offline agent's last heartbeat load is stale: its runs died or moved on.
            online = device["status"] == "online" and device["slots"]
            load = f"{device['running']}/{device['slots']}" if online else ""
            pools, seen = ",".join(device["pools"]), device["last_seen"] or ""
        else:
            load = f"{device['running']}/{device['max_running_tasks']}"
            pools, seen = "", ""
        rows.append((device["name"], device["kind"], device["status"], pools,
                     device["executor"], load, seen))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = zip(row, widths, strict=True)
        print("  ".join(cell.ljust(width) for cell, width in cells).rstrip())
    return EXIT_OK


def _cmd_device_remove(args: argparse.Namespace, extras: list[str]) -> int:
    _call(args.server, "DELETE", f"/api/devices/{args.name}")
    print(f"device {args.name} removed: its agent's token no longer works", file=sys.stderr)
    return EXIT_OK


def _cmd_agent(args: argparse.Namespace, extras: list[str]) -> int:
    try:
        from .agent import Agent, AgentError, load_enrolment, save_enrolment
        from .client import AgentClient
    except ImportError as exc:
        raise CliError(f"lev agent needs levrt's agent extra ({exc.name} is missing): "
                       f"{extra_hint('agent')}", EXIT_FAILED) from None
    try:
        anonymous = AgentClient(args.server)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    server = anonymous.base_url
    # What the agent does, not every request the libraries under it make.
    logging.basicConfig(level=logging.WARNING, format="lev agent: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("lev.agent").setLevel(logging.INFO)
    try:
        with anonymous:
            if args.enrol:
                try:
                    answer = anonymous.enrol(args.enrol)
                except ApiError as exc:
                    raise CliError(f"cannot enrol: {exc}", EXIT_FAILED) from None
                path = save_enrolment(server, answer)
                print(f"lev agent: enrolled as device {answer['name']} of {answer['owner']};"
                      f" token kept in {path}", file=sys.stderr)
        kept = load_enrolment(server)
        # Patient: a server restarting, or its store down for a moment, is waited for.
        with AgentClient(server, kept["token"], patience=60.0) as client:
            return asyncio.run(_serve(Agent(client, temporal=args.temporal, slots=args.slots,
                                             executor=args.executor)))
    except AgentError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None


async def _serve(agent: Agent) -> int:
    """Run ``agent`` until SIGTERM or SIGINT, then let it stop cleanly."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.shutdown)
    try:
        await agent.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return EXIT_OK


def register(commands: Any) -> None:
    """Add this module's subcommands to ``lev``'s subparsers."""
    server_help = "the server (default: the last one lev login logged in to)"
    device = commands.add_parser("device", help="add, list and remove your devices")
    device_commands = device.add_subparsers(dest="device_command", metavar="ACTION",
                                            required=True)
    add = device_commands.add_parser(
        "add", help="add a device and print the command that enrols its agent",
        description="Add a device of yours; prints the lev agent command, with a one-time "
        "enrolment code valid for an hour, to run on the device's machine.")
    add.add_argument("name", metavar="NAME",
                     help="1-64 lower-case letters, digits, '_', '.' or '-'")
    add.add_argument("--pool", action="append", metavar="POOL",
                     help="a pool the device joins (repeat for more)")
    add.add_argument("--server", metavar="URL", help=server_help)
    add.set_defaults(handler=_cmd_device_add)
    listing = device_commands.add_parser(
        "list", help="list the server's runner and your devices, online or offline")
    listing.add_argument("--json", action="store_true", help="print GET /api/devices as JSON")
    listing.add_argument("--server", metavar="URL", help=server_help)
    listing.set_defaults(handler=_cmd_device_list)
    remove = device_commands.add_parser(
        "remove", help="remove a device: its agent's token stops working at once")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--server", metavar="URL", help=server_help)
    remove.set_defaults(handler=_cmd_device_remove)

    agent = commands.add_parser(
        "agent", help="run this machine's agent: a Temporal worker for one of your devices",
        description="Enrol this machine as a device (--enrol CODE, from lev device add), or "
        "use the device token kept in $LEV_HOME/device.json, then report to the server and "
        "take work from Temporal until SIGTERM or Ctrl-C. Connects out only: to the server "
        "and to the Temporal frontend.")
    agent.add_argument("--server", metavar="URL", required=True,
                       help="the levrt server, e.g. http://hub.example.org:8765")
    agent.add_argument("--enrol", metavar="CODE", help="a one-time code from lev device add")
    agent.add_argument("--temporal", metavar="HOST:PORT",
                       help="the Temporal frontend (default: where the server says)")
    agent.add_argument("--slots", type=int, metavar="N",
                       help="activities run at once from each queue, the device's and each pool's "
                       "(default: the machine's cores)")
    agent.add_argument("--executor", choices=("auto", "docker", "process"), default="auto",
                       help="what runs the jobs' tools: auto takes the container engine when "
                       "a Docker API answers, else sandboxed processes (default: auto)")
    agent.set_defaults(handler=_cmd_agent)
