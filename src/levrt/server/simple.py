"""The PEP 503 simple repository index, so pip installs hub packages.

``pip install --index-url http://__token__:TOKEN@host/simple/ lev.user.tool`` asks
``/simple/lev-user-tool/`` (the PEP 503 normalized name) and downloads the linked wheel,
checking its ``#sha256=``. Like every read, the index needs a token: pip sends the one in the
URL as HTTP Basic auth, for the wheels too (they are on the same host).
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from packaging.utils import canonicalize_name

from levrt.server.auth import StoreDep, current_reader
from levrt.server.schemas import errors

router = APIRouter(prefix="/simple", tags=["index"], dependencies=[Depends(current_reader)],
                   responses=errors(401, 404))

# PEP 629: the API version of the pages, so pip knows what it reads.
_HEAD = '<meta name="pypi:repository-version" content="1.0">'


def _page(title: str, links: list[str]) -> HTMLResponse:
    body = "\n".join(links)
    return HTMLResponse(
        f"<!DOCTYPE html>\n<html>\n<head>\n{_HEAD}\n<title>{escape(title)}</title>\n</head>\n"
        f"<body>\n<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


@router.get("/", response_class=HTMLResponse)
def index(store: StoreDep) -> HTMLResponse:
    """Every package, linked under its normalized name."""
    links = [
        f'<a href="{quote(normalized)}/">{escape(name)}</a><br>'
        for name, normalized in store.package_names()
    ]
    return _page("Simple index", links)


@router.get("/{project}/", response_class=HTMLResponse, name="simple_project")
def project(project: str, request: Request, store: StoreDep) -> Response:
    """The wheels of one package, each with its sha256 and Requires-Python."""
    normalized = canonicalize_name(project)
    if project != normalized:
        # PEP 503: a repository may redirect other spellings to the normalized URL.
        return RedirectResponse(str(request.url_for("simple_project", project=normalized)), 301)
    package = store.get_package(normalized)
    if package is None:
        raise HTTPException(404, f"no package {project!r} on this hub")
    links = []
    for version in reversed(package["versions"]):  # oldest first, as PyPI lists them
        href = f"../../api/files/{quote(version['filename'])}#sha256={version['sha256']}"
        requires = version["requires_python"]
        attr = f' data-requires-python="{escape(requires)}"' if requires else ""
        links.append(f'<a href="{escape(href)}"{attr}>{escape(version["filename"])}</a><br>')
    return _page(f"Links for {package['name']}", links)
