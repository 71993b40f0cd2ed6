"""The request body limit: a body over `max_bytes` gets 413 {"error": ...} before any route runs.

A pure ASGI middleware (Starlette's BaseHTTPMiddleware would hide the client's hang-up from the
routes). A declared Content-Length over the limit is refused at once, unread; a body without one
(chunked) is read up to the limit and refused as soon as it passes it. A body within the limit
is handed to the app as it came, and after it the app's `receive` is the server's own again
(so a route still learns of a client that hangs up).
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: 413 for request bodies over `max_bytes` (-1: no limit)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_bytes < 0:
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await too_large(send, self.max_bytes)
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await too_large(send, self.max_bytes)
            if not message.get("more_body", False):
                break
        buffered = iter(messages)

        async def replay() -> Message:
            return next(buffered, None) or await receive()

        await self.app(scope, replay, send)


async def too_large(send: Send, limit: int) -> None:
    """Answer 413 {"error": ...}."""
    body = json.dumps({"error": f"Request body too large (the limit is {limit} bytes)"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
