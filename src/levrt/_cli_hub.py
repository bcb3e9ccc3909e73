"""The `lev` subcommands for the hub: serve, user, login, publish, install.

``lev serve`` and ``lev user add`` work on the server's store directly (run them where the
server runs); ``lev login``, ``lev publish`` and ``lev install`` talk to a hub over HTTP. The
token ``lev login`` gets is kept in ``$LEV_HOME/credentials.json`` (mode 0600), per server URL.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._cli_base import EXIT_FAILED, EXIT_OK, CliError
from .client import ApiError, ApiUnreachable, Client, save_login, server_url
from .store import HubConflictError, default_home

if TYPE_CHECKING:
    from .server.settings import Settings
    from .store import Store


# -- settings, credentials ---------------------------------------------------------------


def open_store(url: str | None = None) -> Store:
    """The store at ``url`` (default: the runtime's), SQLAlchemy imported only now: most
    commands, ``lev run`` of a server's task among them, need none."""
    from .store import Store

    return Store.open(url)


def _server_settings(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from .server.settings import Settings

    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise CliError(
            f"server setting {where} (LEV_SERVER_{where.upper()}, its option or {where} in "
            f"[server] of {default_home() / 'config.toml'}): {error['msg']}"
        ) from None


def _hub_url(url: str) -> str:
    try:
        return server_url(url)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def hub_client(server: str | None) -> Client:
    """A client for the hub ``--server`` names (default: the last one logged in to), with
    the token ``lev login`` kept for it."""
    return Client.from_config(_hub_url(server) if server else None)


# -- commands --------------------------------------------------------------------------------


def _read_stdin_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CliError("--password-stdin: standard input gave no password (one line expected)")
    return password


def _cmd_serve(args: argparse.Namespace, extras: list[str]) -> int:
    import uvicorn

    from .server import create_app

    settings = _server_settings(host=args.host, port=args.port, db_url=args.db,
                                temporal=args.temporal)
    store = open_store(settings.db_url)
    try:
        if store.count_users() == 0:
            password = secrets.token_urlsafe(12)
            try:
                store.create_user("admin", password, is_admin=True)
            except HubConflictError:
                pass  # another server on this store made it first
            else:
                print(f"created user admin with password {password} (shown this once: keep it; "
                      f"lev login http://{settings.host}:{settings.port} --user admin)", flush=True)
        url = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        print(f"levrt platform at {url}/ (web pages; API docs at {url}/docs)", flush=True)
        uvicorn.run(create_app(settings, store=store), host=settings.host, port=settings.port,
                    log_level="info")
    except SystemExit as exc:
        # uvicorn has logged why it could not start (a port in use, ...) in one line.
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED
    finally:
        store.close()
    return EXIT_OK


def _cmd_user_add(args: argparse.Namespace, extras: list[str]) -> int:
    given = _read_stdin_password() if args.password_stdin else None
    password = given or secrets.token_urlsafe(12)
    with open_store(_server_settings().db_url) as store:
        try:
            store.create_user(args.name, password, is_admin=args.admin)
        except (ValueError, HubConflictError) as exc:
            raise CliError(str(exc), EXIT_FAILED) from None
    role = "admin" if args.admin else "user"
    shown = "" if given else f" with password {password} (shown this once)"
    print(f"created {role} {args.name}{shown}; they can publish lev.{args.name}.*")
    return EXIT_OK


def _cmd_user_grant(args: argparse.Namespace, extras: list[str]) -> int:
    with open_store(_server_settings().db_url) as store:
        try:
            store.grant_namespace(args.namespace, args.name)
        except (ValueError, LookupError, HubConflictError) as exc:
            raise CliError(str(exc), EXIT_FAILED) from None
        namespaces = store.list_namespaces(args.name)
    shown = ", ".join(f"lev.{namespace}.*" for namespace in namespaces)
    print(f"{args.name} can publish {shown}")
    return EXIT_OK


def _cmd_login(args: argparse.Namespace, extras: list[str]) -> int:
    url = _hub_url(args.url)
    interactive = sys.stdin.isatty()
    user = args.user
    if not user:
        if args.password_stdin or not interactive:
            raise CliError("give the user name with --user NAME")
        user = input("user: ").strip()
    if args.password_stdin:
        password = _read_stdin_password()
    elif interactive:
        password = getpass.getpass(f"password for {user} at {url}: ")
    else:
        raise CliError("no terminal to ask the password on: pipe it in with --password-stdin")
    with Client(url) as client:
        try:
            answer = client.login(user, password, f"lev login on {socket.gethostname()}")
        except ApiUnreachable:
            raise
        except ApiError as exc:
            raise CliError(f"{url} refused the login: {exc}", EXIT_FAILED) from None
    path = save_login(url, answer["user"], answer["token"])
    print(f"logged in to {url} as {answer['user']} (token saved in {path})")
    return EXIT_OK


def _cmd_publish(args: argparse.Namespace, extras: list[str]) -> int:
    from .packages import PackageError, build_wheel, package_manifest, read_package

    folder = Path(args.dir)
    with hub_client(args.server) as client, \
            tempfile.TemporaryDirectory(prefix="lev-publish-") as out:
        try:
            info = read_package(folder)
            manifest = package_manifest(folder)
            wheel = build_wheel(folder, Path(out))
        except PackageError as exc:
            raise CliError(str(exc), EXIT_FAILED) from None
        try:
            answer = client.upload_package(wheel, manifest)
        except ApiUnreachable:
            raise
        except ApiError as exc:
            raise CliError(f"{client.base_url} refused {info.name} {info.version}: {exc}",
                           EXIT_FAILED) from None
    print(f"published {answer['package']}@{answer['version']}: {answer['url']}")
    return EXIT_OK


def _with_token(url: str, token: str) -> str:
    """``url`` with ``__token__:token@`` in it: pip sends that as HTTP Basic auth, which the
    hub takes as a token (as PyPI does)."""
    parts = urllib.parse.urlsplit(url)
    netloc = f"__token__:{urllib.parse.quote(token, safe='')}@{parts.netloc}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _cmd_install(args: argparse.Namespace, extras: list[str]) -> int:
    with hub_client(args.server) as client:
        url, token = client.base_url, client.token or ""
    index = f"{url}/simple/"
    # The hub is an extra index: pip keeps its main one (PyPI or a mirror), and requirements
    # already met, levrt itself included, are left as they are. The URL carries the token, so
    # it goes to pip in the environment, which other users cannot read (ps shows argv). The
    # variable overrides an extra-index-url of pip's config files; one already in the
    # environment is kept.
    extra = " ".join(filter(None, [os.environ.get("PIP_EXTRA_INDEX_URL"),
                                   _with_token(index, token)]))
    command = [sys.executable, "-m", "pip", "install", *args.specs]
    print(f"running PIP_EXTRA_INDEX_URL={index} {shlex.join(command)}", file=sys.stderr,
          flush=True)
    code = subprocess.call(command, env={**os.environ, "PIP_EXTRA_INDEX_URL": extra})
    if code != 0:
        raise CliError(f"pip install failed (exit code {code}); its messages above say why",
                       EXIT_FAILED)
    return EXIT_OK


def _package_folders(root: Path) -> list[Path]:
    """The hub package folders in ``root`` (or ``root`` itself when it is one)."""
    if (root / "pyproject.toml").is_file():
        return [root]
    return sorted(path for path in root.iterdir() if (path / "pyproject.toml").is_file())


def _load_one(store: Store, settings: Settings, folder: Path, user: str | None) -> str:
    """Publish the package in ``folder`` into ``store``, as an upload would: the same checks
    (:func:`levrt.server.upload.check_upload`) and the same :meth:`Store.publish_version`.
    Returns what was done (published, or skipped: the version is there); CliError says why
    the package could not be published."""
    from .packages import PackageError, build_wheel, package_manifest, read_package
    from .server.upload import UploadRefused, check_upload
    from .store import HubPermissionError

    try:
        info = read_package(folder)
    except PackageError as exc:
        raise CliError(f"{folder}: {exc}", EXIT_FAILED) from None
    owner = user or info.user
    if store.get_version(info.name, info.version) is not None:
        return f"skipped {info.name} {info.version}: that version is in the store already"
    if store.get_user(owner) is None:
        password = secrets.token_urlsafe(12)
        try:
            store.create_user(owner, password)
        except (ValueError, HubConflictError) as exc:
            raise CliError(f"{info.name}: cannot create its owner {owner!r}: {exc}",
                           EXIT_FAILED) from None
        print(f"created user {owner} with password {password} (shown this once); they can "
              f"publish lev.{owner}.*", flush=True)
    try:
        manifest = package_manifest(folder)
        with tempfile.TemporaryDirectory(prefix="lev-hub-load-") as out:
            wheel = build_wheel(folder, Path(out))
            with wheel.open("rb") as file:
                checked = check_upload(file, wheel.name, json.dumps(manifest).encode(),
                                       max_unpacked=settings.max_unpacked_bytes,
                                       max_manifest=settings.max_manifest_bytes)
    except (PackageError, UploadRefused) as exc:
        raise CliError(f"{info.name} {info.version}: {exc}", EXIT_FAILED) from None
    try:
        store.publish_version(
            package=checked.package,
            version=checked.version,
            uploader=owner,
            manifest=checked.manifest,
            filename=checked.filename,
            wheel=checked.wheel,
            files=checked.files,
            summary=checked.summary,
            requires_python=checked.requires_python,
        )
    except HubConflictError as exc:  # published meanwhile, or a name pip takes for another
        return f"skipped {info.name} {info.version}: {exc}"
    except (HubPermissionError, ValueError) as exc:
        raise CliError(f"{info.name} {info.version}: {exc}", EXIT_FAILED) from None
    return f"published {checked.package} {checked.version} as {owner}"


def _cmd_hub_load(args: argparse.Namespace, extras: list[str]) -> int:
    root = Path(args.dir)
    if not root.is_dir():
        raise CliError(f"{root} is not a folder")
    folders = _package_folders(root)
    if not folders:
        raise CliError(f"{root} holds no package folders (folders with a pyproject.toml)")
    settings = _server_settings()
    failed = 0
    with open_store(settings.db_url) as store:
        if args.user and store.get_user(args.user) is None:
            raise CliError(f"no user {args.user!r} in the store: lev user add {args.user} "
                           "first, or leave out --user", EXIT_FAILED)
        # A server on another LEV_HOME or LEV_DB_URL would not see them: say where they go.
        print(f"lev hub load: into {store.where()}", file=sys.stderr, flush=True)
        for folder in folders:
            try:
                print(_load_one(store, settings, folder, args.user), flush=True)
            except CliError as exc:
                failed += 1
                print(f"lev: error: {exc}", file=sys.stderr, flush=True)
    if failed:
        raise CliError(f"{failed} of {len(folders)} packages were not loaded", EXIT_FAILED)
    return EXIT_OK


def register(commands: Any) -> None:
    """Add this module's subcommands to ``lev``'s subparsers."""
    serve = commands.add_parser(
        "serve", help="run the platform server (the hub)",
        description="Serve the hub's API and its PEP 503 index on the runtime's store "
        "(LEV_SERVER_DB_URL, else LEV_DB_URL, else $LEV_HOME/levrt.db). The first start on a "
        "store with no users creates the user admin and prints its password once.")
    serve.add_argument("--host", help="address to listen on (default: LEV_SERVER_HOST, else "
                       "127.0.0.1; 0.0.0.0 exposes the hub to the network)")
    serve.add_argument("--port", type=int, help="port (default: LEV_SERVER_PORT, else 8765)")
    serve.add_argument("--db", metavar="URL",
                       help="the store's database, e.g. postgresql://user:password@host/levrt "
                       "(default: LEV_SERVER_DB_URL, else LEV_DB_URL, else $LEV_HOME/levrt.db)")
    serve.add_argument("--temporal", metavar="HOST:PORT",
                       help="the Temporal frontend the server tells agents to use (default: "
                       "LEV_SERVER_TEMPORAL; docs/distributed.md)")
    serve.set_defaults(handler=_cmd_serve)

    user = commands.add_parser("user", help="manage the hub's users (on the server's store)")
    user_commands = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = user_commands.add_parser(
        "add", help="create a user, who owns the namespace lev.NAME",
        description="Create a hub user in the server's store; NAME also becomes the "
        "namespace they publish in (lev.NAME.*). Prints a generated password unless one "
        "comes on standard input.")
    add.add_argument("name", metavar="NAME", help="lower-case letters, digits, underscores")
    add.add_argument("--admin", action="store_true", help="make the user an administrator")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    add.set_defaults(handler=_cmd_user_add)
    grant = user_commands.add_parser(
        "grant", help="let a user publish in one more namespace lev.NAMESPACE.*",
        description="Give user NAME the namespace NAMESPACE (a team's or a project's): they "
        "may publish lev.NAMESPACE.* from then on, and no one else, nor a new user of that "
        "name, can.")
    grant.add_argument("name", metavar="NAME", help="an existing user")
    grant.add_argument("namespace", metavar="NAMESPACE", help="a namespace no one has yet")
    grant.set_defaults(handler=_cmd_user_grant)

    login = commands.add_parser(
        "login", help="log in to a hub and keep an API token for lev publish",
        description="Trade a user name and password for an API token and keep it in "
        "$LEV_HOME/credentials.json (mode 0600); the hub becomes the default for publish "
        "and install.")
    login.add_argument("url", metavar="URL", help="the hub, e.g. http://127.0.0.1:8765")
    login.add_argument("--user", metavar="NAME", help="user name (asked when not given)")
    login.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input")
    login.set_defaults(handler=_cmd_login)

    publish = commands.add_parser(
        "publish", help="build a package's wheel and upload it with its manifest",
        description="Read the package in DIR, make its manifest (importing it in a "
        "subprocess), build its wheel and upload both to the hub. A version that exists is "
        "refused: raise the version in pyproject.toml.")
    publish.add_argument("dir", nargs="?", default=".", metavar="DIR",
                         help="the package folder USER.TOOL (default: the current folder)")
    publish.add_argument("--server", metavar="URL", help="the hub (default: the last lev login)")
    publish.set_defaults(handler=_cmd_publish)

    hub = commands.add_parser("hub", help="work on the hub's store directly (on the server)")
    hub_commands = hub.add_subparsers(dest="hub_command", metavar="ACTION", required=True)
    load = hub_commands.add_parser(
        "load", help="publish every package folder under DIR into the server's store",
        description="Build each package folder under DIR (its wheel, and its manifest by "
        "importing it in a subprocess) and publish it straight into the server's store, with "
        "the checks an upload gets. A package goes to its own user (lev.USER.TOOL), created "
        "with a printed password when missing, unless --user names another. Versions already in "
        "the store are skipped.")
    load.add_argument("dir", metavar="DIR", help="a folder of package folders, e.g. "
                      "examples/lev-hub (or one package folder)")
    load.add_argument("--user", metavar="NAME", help="publish as this existing user, who "
                      "must own the packages' namespaces (default: each package's own user)")
    load.set_defaults(handler=_cmd_hub_load)

    install = commands.add_parser(
        "install", help="pip install hub packages into this Python",
        description="Run pip install in lev's own Python with the hub's /simple/ index added "
        "to pip's configured ones, so a package's dependencies on other hub packages resolve. "
        "pip gets the token of lev login through PIP_EXTRA_INDEX_URL.")
    install.add_argument("specs", nargs="+", metavar="SPEC",
                         help="a requirement, e.g. lev.szczecin.nmap_python or 'lev.a.b>=1.0'")
    install.add_argument("--server", metavar="URL", help="the hub (default: the last lev login)")
    install.set_defaults(handler=_cmd_install)
