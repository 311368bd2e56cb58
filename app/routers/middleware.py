"""ASGI middleware: the ``X-Engine-Node`` header and request metrics on every response.

Written as plain ASGI rather than ``BaseHTTPMiddleware`` so streamed and proxied
bodies pass through untouched and the hot path stays cheap.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import Metrics


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
                message["headers"] = [*message.get("headers", []), self.header]
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
