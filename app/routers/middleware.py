"""ASGI middleware: the ``X-Engine-Node`` header and request metrics on every response.

Written as plain ASGI rather than ``BaseHTTPMiddleware`` so streamed and proxied
bodies pass through untouched and the hot path stays cheap.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import Metrics
from app.node import BootState
from app.routers.problems import problem


class EngineHeaders:
    """Adds ``X-Engine-Node`` to every HTTP response and records metrics."""

    def __init__(self, app: ASGIApp, *, node_name: str, metrics: Metrics) -> None:
        self.app = app
        self.header = (b"x-engine-node", node_name.encode())
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_header(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                # A proxied answer keeps the node that produced it (``Via`` names us).
                if not any(name.lower() == b"x-engine-node" for name, _ in headers):
                    message["headers"] = [*headers, self.header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_header)
        finally:
            operation = _operation(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, operation, str(status)).inc()
            self.metrics.latency.labels(method, operation).observe(time.perf_counter() - started)


def _operation(scope: Scope) -> str:
    """The OpenAPI operation id of the matched route: stable and low-cardinality."""
    route = scope.get("route")
    return str(getattr(route, "operation_id", None) or getattr(route, "path", None) or "unmatched")


class BootGate:
    """Until boot completes, the API answers 503 with ``Retry-After`` (DESIGN §5 step 6).

    Health, readiness, metrics, the docs and the control link stay open: edges must be
    able to connect while the master waits for them.
    """

    OPEN_PATHS = frozenset({"/api/health", "/api/ready", "/api/edge/link", "/metrics"})

    def __init__(self, app: ASGIApp, *, boot: BootState) -> None:
        self.app = app
        self.boot = boot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            self.boot.ready
            or scope["type"] not in ("http", "websocket")
            or not path.startswith("/api/")
            or path in self.OPEN_PATHS
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013, "reason": "booting"})
            return
        response = problem(
            503,
            "Service Unavailable",
            f"the server is booting ({self.boot.phase}); retry shortly",
            headers={"Retry-After": str(max(1, round(self.boot.expected_wait_s)))},
        )
        await response(scope, receive, send)


#: Set in the scope of a HEAD request answered as GET: an endpoint that streams without
#: end (the status stream) answers its head alone.
HEAD_REQUEST = "engine.head"


class HeadAsGet:
    """Answers ``HEAD`` wherever ``GET`` answers, with the same status and headers and no
    body: uptime checkers and load balancers probe with it, and a 405 reads as down.

    The request goes on as a ``GET`` (so every route, the proxy and the redirects treat
    it alike) and whatever body comes back is dropped here, whichever server runs this.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def send_head(message: Message) -> None:
            nonlocal ended
            if ended:
                return
            if message["type"] == "http.response.body":
                ended = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        as_get = {**scope, "method": "GET", HEAD_REQUEST: True}
        try:
            await self.app(as_get, receive, send_head)
        finally:
            if "route" in as_get:  # the metrics name the operation that answered
                scope["route"] = as_get["route"]
