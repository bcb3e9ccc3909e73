"""The logins ``lev login`` saves: ``$LEV_HOME/credentials.json``, mode 0600, holding
``{"default": URL | null, "servers": {URL: {"user": NAME, "token": TOKEN}}}``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from levrt.store import default_home

from ._errors import CredentialsError, LoginRequired

CREDENTIALS = "credentials.json"


def credentials_path() -> Path:
    return default_home() / CREDENTIALS


def server_url(url: str) -> str:
    """``url`` without surrounding blanks and trailing slashes; ValueError unless http(s)."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"URL {url!r} must start with http:// or https://")
    return url


def load_credentials() -> dict[str, Any]:
    """The saved logins (none when the file is missing); CredentialsError when unreadable."""
    path = credentials_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"default": None, "servers": {}}
    except (OSError, ValueError) as exc:
        raise CredentialsError(
            f"cannot read {path}: {exc}; delete it and run lev login again") from None
    if not isinstance(data, dict) or not isinstance(data.get("servers"), dict):
        raise CredentialsError(
            f"{path} is not a lev credentials file; delete it and run lev login again")
    return data


def save_login(url: str, user: str, token: str) -> Path:
    """Keep ``token`` for ``url`` and make ``url`` the default; the file's path."""
    data = load_credentials()
    data["servers"][url] = {"user": user, "token": token}
    data["default"] = url
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{CREDENTIALS}.{os.getpid()}")
    # Created 0600 from the start (not chmod-ed after): the token is never readable by others.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2)
        file.write("\n")
    os.replace(partial, path)
    return path


def saved_login(server: str | None) -> tuple[str, str]:
    """The server (``server``, else the last one logged in to) and the token kept for it.

    Raises LoginRequired when there is no such login, CredentialsError (and ValueError for a
    ``server`` that is not an http(s) URL)."""
    credentials = load_credentials()
    url = server_url(server) if server else credentials.get("default")
    if not url:
        raise LoginRequired("no hub given: pass --server URL, or log in first with lev login URL")
    login = credentials["servers"].get(url)
    if not isinstance(login, dict) or not isinstance(login.get("token"), str):
        raise LoginRequired(f"not logged in to {url}: run lev login {url}")
    return url, login["token"]
