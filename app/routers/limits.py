"""ASGI middleware: refuse oversized bodies and unreadable URLs before anything reads them.

A body larger than ``ENGINE_MAX_DOCUMENT_BYTES`` is answered 413 when its
``Content-Length`` says so, and otherwise as soon as the bytes streamed in pass the
limit, so the server never holds more than the limit of any request. The rest of the
body is read and dropped first (up to :data:`DRAIN_LIMIT`), because most HTTP clients
only read the answer once they have sent everything; a client that asked
``Expect: 100-continue`` gets the 413 before it sends anything. A path or query
that is not UTF-8 once percent-decoded, or that carries a NUL byte, is answered 400:
no route could mean it, and a NUL must never reach a file name or the database.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.routers.problems import problem

#: Bytes of a refused body read and dropped so the client can read the 413; beyond
#: this the connection is closed under the client instead.
DRAIN_LIMIT = 64 * 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the body passed the limit; answered 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_detail(limit))


def too_large_detail(limit: int) -> str:
    return f"the request body exceeds the limit of {limit} bytes (ENGINE_MAX_DOCUMENT_BYTES)"


class RequestLimits:
    """Bounds every HTTP request body and refuses paths and queries no route can mean."""

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        unreadable = unreadable_url(scope)
        if unreadable is not None:
            part, reason = unreadable
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": f"{part}: {reason}"})
                return
            response = problem(400, "Bad Request", f"{part}: {reason}", field=part, reason=reason)
            await response(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            if headers.get("expect", "").lower() != "100-continue":
                await _drain(receive)
            await self._refuse(scope, receive, send)
            return
        started = False
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    if message.get("more_body"):
                        await _drain(receive)
                    raise BodyTooLarge(self.max_body)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            "Content Too Large",
            too_large_detail(self.max_body),
            headers={"Connection": "close"},
            limit=self.max_body,
        )
        await response(scope, receive, send)


async def _drain(receive: Receive) -> None:
    """Read and drop what is left of the request body, up to `DRAIN_LIMIT` bytes."""
    drained = 0
    while drained <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return
        drained += len(message.get("body", b""))


def unreadable_url(scope: Scope) -> tuple[str, str] | None:
    """Which part of the URL cannot be read and why, or None when both are fine."""
    raw_path: bytes = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
    for part, raw in (("path", raw_path), ("query", scope.get("query_string", b""))):
        decoded = unquote_to_bytes(raw.replace(b"+", b" ") if part == "query" else raw)
        if b"\x00" in decoded:
            return part, "contains a NUL byte"
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            return part, "is not valid UTF-8 once percent-decoded"
    return None
