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
