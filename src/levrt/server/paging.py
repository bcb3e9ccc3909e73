"""Pages of a long list: ``page`` (from 1) and ``limit`` in, the slice and the links out.

The API keeps answering a JSON list and says the rest in headers: ``X-Total-Count`` (items
over all pages) and ``Link`` with ``rel="next"`` / ``rel="prev"`` (RFC 8288), as GitHub's
API does. The web pages show the same as previous / next links under the list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import Response


@dataclass(frozen=True)
class Page:
    """Page ``number`` (from 1) of ``size`` items out of ``total``."""

    number: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number * self.size < self.total

    def url(self, request: Request, number: int) -> str:
        """The request's URL (path and query) on page ``number``."""
        url = URL(str(request.url)).include_query_params(page=number)
        return f"{url.path}?{url.query}"

    def links(self, request: Request) -> dict[str, str]:
        """``{"prev": url, "next": url}``, for the pages that exist."""
        found = {}
        if self.has_prev:
            found["prev"] = self.url(request, min(self.number - 1, self.pages))
        if self.has_next:
            found["next"] = self.url(request, self.number + 1)
        return found

    def set_headers(self, request: Request, response: Response) -> None:
        """``X-Total-Count`` and ``Link`` on the API's answer."""
        response.headers["X-Total-Count"] = str(self.total)
        links = self.links(request)
        if links:
            response.headers["Link"] = ", ".join(
                f'<{url}>; rel="{rel}"' for rel, url in links.items())
