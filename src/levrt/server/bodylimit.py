"""A cap on JSON request bodies, checked before a route reads them.

FastAPI reads a JSON body whole before any route code or dependency runs, so without this a
client could make the server hold a body of any size, credentials or not (a 200 MB body to
``POST /api/agent/enrol`` took a process holding the app and its test client from 504 to
1,077 MB before its 422). Bodies of
other kinds have their own limits where they are read (uploads: :mod:`levrt.server.upload`).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What a request with no credentials at all may send: a log-in, an enrolment.
ANONYMOUS_BYTES = 64 * 1024


class BodyLimit:
    """ASGI middleware answering 413 for a JSON body past ``max_bytes`` (past
    :data:`ANONYMOUS_BYTES` for a request with neither an ``Authorization`` header nor a
    cookie), before the app reads it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            await self.app(scope, receive, send)
            return
        anonymous = b"authorization" not in headers and b"cookie" not in headers
        limit = ANONYMOUS_BYTES if anonymous else self.max_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        # Without a length (chunked), count what comes, holding it for the app.
        held: list[Message] = []
        size = 0
        while True:
            message = await receive()
            held.append(message)
            size += len(message.get("body", b""))
            if size > limit:
                await _refuse(send, limit)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Message:
            return held.pop(0) if held else await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send, limit: int) -> None:
    body: dict[str, Any] = {"detail": f"the request body is larger than this server takes "
                                      f"({limit} bytes)"}
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
