"""Send each request about a module or system to the server that controls it.

An ASGI middleware so that one decision (:func:`app.services.routing.decide`) covers
every module and system endpoint — exec, state, funcs, start, stop — and, on an edge,
every configuration write, without any route knowing about it. Answers are a ``307``
to the controller's public URL, a reverse-proxied response from it, or a ``503``
problem naming it.
"""

from __future__ import annotations

import logging
import re

import httpx
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import (
    BadGateway,
    ControlledElsewhere,
    EngineError,
    GatewayTimeout,
    Unavailable,
)
from app.node import Node
from app.routers.problems import error_response
from app.services.routing import (
    Local,
    Placement,
    Proxy,
    Redirect,
    decide,
    preference_from,
)

log = logging.getLogger(__name__)

RUNTIME_PATH = re.compile(r"^/api/(modules|systems)/([^/]+)/(start|stop|state|exec|funcs)$")
CONFIG_PATH = re.compile(r"^/api/(edges|systems|modules|drivers|users)(/.*)?$")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class ControllerRouting:
    """Routes requests whose target another server controls."""

    def __init__(self, app: ASGIApp, *, node: Node) -> None:
        self.app = app
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.node.placement is None:
            await self.app(scope, receive, send)
            return
        target = await self._placement(scope["path"], scope["method"])
        if target is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        preference, asked = preference_from(
            headers.get("prefer"), self.node.settings.client_routing
        )
        route = decide(target, preference)
        if isinstance(route, Local):
            await self.app(scope, receive, send)
            return
        applied = {"Preference-Applied": f"routing={preference}"} if asked else {}
        try:
            if isinstance(route, Proxy):
                await self._proxy(scope, receive, send, route, applied)
                return
            if isinstance(route, Redirect):
                location = route.base_url + scope["path"]
                if scope.get("query_string"):
                    location += "?" + scope["query_string"].decode("latin-1")
                raise ControlledElsewhere(
                    f"{target.name} controls this: follow Location", location=location
                )
            raise Unavailable(route.detail, retry_after=route.retry_after, controller=target.name)
        except EngineError as error:
            error.headers.update(applied)
            await error_response(error)(scope, receive, send)

    async def _placement(self, path: str, method: str) -> Placement | None:
        """Where the request's target is controlled; None when this server answers anyway."""
        placement = self.node.placement
        assert placement is not None
        runtime = RUNTIME_PATH.match(path)
        if runtime is not None:
            kind, target_id = runtime.group(1), runtime.group(2)
            topology = await self.node.modules.topology()
            if kind == "modules":
                location = topology.module_locations.get(target_id)
            else:
                location = topology.location_of_system(target_id)
            return await placement.placement(location)
        if self.node.settings.is_edge and method not in READ_METHODS and CONFIG_PATH.match(path):
            return await placement.placement(None)  # configuration is the master's
        return None

    async def _proxy(
        self, scope: Scope, receive: Receive, send: Send, route: Proxy, applied: dict[str, str]
    ) -> None:
        client = self.node.proxy_client()
        request = client.build_request(
            scope["method"],
            route.base_url + scope["path"],
            params=scope.get("query_string", b"").decode("latin-1") or None,
            headers=self._forward_headers(scope),
            content=await _read_body(receive),
        )
        try:
            upstream = await client.send(request, stream=True)
        except httpx.TimeoutException:
            raise GatewayTimeout(
                f"{route.name} did not answer in time", controller=route.name
            ) from None
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"{route.name} cannot be reached: {type(exc).__name__}", controller=route.name
            ) from None
        try:
            if upstream.status_code >= 500 and "x-engine-node" not in upstream.headers:
                raise BadGateway(
                    f"{route.name} failed with {upstream.status_code}", controller=route.name
                )
            headers = [
                (k.encode("latin-1"), v.encode("latin-1"))
                for k, v in upstream.headers.multi_items()
                if k.lower() not in HOP_BY_HOP
            ]
            headers.append((b"via", f"1.1 {self.node.settings.node_name}".encode()))
            headers += [(k.lower().encode(), v.encode()) for k, v in applied.items()]
            await send(
                {"type": "http.response.start", "status": upstream.status_code, "headers": headers}
            )
            async for chunk in upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await upstream.aclose()

    def _forward_headers(self, scope: Scope) -> list[tuple[str, str]]:
        incoming = Headers(scope=scope)
        forwarded = [(k, v) for k, v in incoming.items() if k.lower() not in HOP_BY_HOP]
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        prior = incoming.get("x-forwarded-for")
        forwarded += [
            ("x-forwarded-for", f"{prior}, {peer}" if prior else peer),
            ("x-forwarded-proto", scope.get("scheme", "http")),
            ("x-forwarded-host", incoming.get("host", "")),
            ("via", f"1.1 {self.node.settings.node_name}"),
        ]
        return forwarded


async def _read_body(receive: Receive) -> bytes:
    """The request body, read whole (these endpoints take small JSON bodies)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)
