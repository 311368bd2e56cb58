"""Send each request about a module or system to the server that controls it.

Routes declare what they are about: a route about a module or a system carries the
dependency :data:`BY_MODULE` or :data:`BY_SYSTEM` (or another :class:`RoutedBy`),
naming its path parameter. Nothing else decides whether a request is routed, so a
route added anywhere is routed by its own declaration, and the one decision
(:func:`app.services.routing.decide`) covers every such route. The declaration
depends on the caller's authentication, so an anonymous caller hears 401 before
anything about where the target lives.

The answer is a ``307`` to the controller's public URL, a reverse-proxied response
from it, or a ``503`` problem naming it. On an edge, configuration writes go to the
master the same way, decided by :func:`edge_configuration_writes` for the whole
configuration API (the edge's replica serves the reads).
"""

from __future__ import annotations

import re
from typing import Literal

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import Scope

from app.errors import (
    BadGateway,
    ControlledElsewhere,
    EngineError,
    GatewayTimeout,
    Unavailable,
)
from app.node import Node
from app.routers.deps import CurrentUser, NodeDep, PlacementDep
from app.services.routing import (
    Local,
    Placement,
    Preference,
    Proxy,
    Redirect,
    decide,
    preference_from,
)

CONFIG_PATH = re.compile(r"^/api/(edges|systems|modules|drivers|users)(/.*)?$")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Headers that belong to one hop.
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
#: Headers the server sending the answer sets itself: relayed, they would be repeated.
SET_BY_THIS_SERVER = frozenset({"date", "server"})


class Answered(Exception):
    """Routing answered the request itself (a proxied response): send ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__("answered by client routing")
        self.response = response


class RoutedBy:
    """The declaration that a route is about the module or system in path parameter ``param``.

    ``prefer`` is the routing used when the client does not ask for one with
    ``Prefer: routing=…``; ``None`` means ``ENGINE_CLIENT_ROUTING``.
    """

    def __init__(
        self,
        kind: Literal["module", "system"],
        param: str,
        *,
        prefer: Preference | None = None,
    ) -> None:
        self.kind = kind
        self.param = param
        self.prefer = prefer

    async def __call__(self, request: Request, node: NodeDep, _user: CurrentUser) -> None:
        target_id = request.path_params[self.param]
        topology = await node.modules.topology()
        if self.kind == "module":
            location = topology.module_locations.get(target_id)
        else:
            location = topology.location_of_system(target_id)
        target = await node.placement.placement(location)
        await route(node, request, target, self.prefer or node.settings.client_routing)


#: The declarations of the native runtime routes: ``dependencies=[BY_MODULE]``.
BY_MODULE = Depends(RoutedBy("module", "module_id"))
BY_SYSTEM = Depends(RoutedBy("system", "system_id"))


async def route(node: Node, request: Request, target: Placement, default: Preference) -> None:
    """Return when this server answers the request.

    Otherwise raises ``ControlledElsewhere`` (307), ``Unavailable`` (503),
    ``GatewayTimeout`` or ``BadGateway`` (the proxied controller failed), or
    ``Answered`` with the controller's proxied response.
    """
    preference, asked = preference_from(request.headers.get("prefer"), default)
    decision = decide(target, preference)
    if isinstance(decision, Local):
        return
    applied = {"Preference-Applied": f"routing={preference}"} if asked else {}
    try:
        if isinstance(decision, Proxy):
            raise Answered(await _proxy(node, request, decision, applied))
        if isinstance(decision, Redirect):
            location = decision.base_url + request.url.path
            if request.url.query:
                location += "?" + request.url.query
            raise ControlledElsewhere(
                f"{target.name} controls this: follow Location", location=location
            )
        raise Unavailable(decision.detail, retry_after=decision.retry_after, controller=target.name)
    except EngineError as error:
        error.headers.update(applied)
        raise


async def _proxy(node: Node, request: Request, route: Proxy, applied: dict[str, str]) -> Response:
    client = node.proxy_client()
    upstream_request = client.build_request(
        request.method,
        route.base_url + request.url.path,
        params=request.url.query or None,
        headers=_forward_headers(node, request.scope),
        content=await request.body(),
    )
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.TimeoutException:
        raise GatewayTimeout(
            f"{route.name} did not answer in time", controller=route.name
        ) from None
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"{route.name} cannot be reached: {type(exc).__name__}", controller=route.name
        ) from None
    if upstream.status_code >= 500 and "x-engine-node" not in upstream.headers:
        await upstream.aclose()
        raise BadGateway(f"{route.name} failed with {upstream.status_code}", controller=route.name)
    # The client has read the whole body already (the proxied endpoints answer small
    # JSON): one plain response, where streaming it cost a task group per request.
    response = Response(await _body(upstream), status_code=upstream.status_code)
    # The body is relayed as it came (still encoded), so its length still holds.
    response.raw_headers = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in upstream.headers.multi_items()
        if k.lower() == "content-length"
        or (k.lower() not in HOP_BY_HOP and k.lower() not in SET_BY_THIS_SERVER)
    ]
    response.raw_headers.append((b"via", f"1.1 {node.settings.node_name}".encode()))
    response.raw_headers += [(k.lower().encode(), v.encode()) for k, v in applied.items()]
    return response


async def _body(upstream: httpx.Response) -> bytes:
    """The upstream body as it came (still content-encoded); the response is closed."""
    try:
        return b"".join([chunk async for chunk in upstream.aiter_raw()])
    finally:
        await upstream.aclose()


def _forward_headers(node: Node, scope: Scope) -> list[tuple[str, str]]:
    incoming = Headers(scope=scope)
    forwarded = [(k, v) for k, v in incoming.items() if k.lower() not in HOP_BY_HOP]
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    prior = incoming.get("x-forwarded-for")
    forwarded += [
        ("x-forwarded-for", f"{prior}, {peer}" if prior else peer),
        ("x-forwarded-proto", scope.get("scheme", "http")),
        ("x-forwarded-host", incoming.get("host", "")),
        ("via", f"1.1 {node.settings.node_name}"),
    ]
    return forwarded


async def _answered(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Answered)
    return exc.response


def install(app: FastAPI) -> None:
    """Let routing's own answers (proxied responses) reach the client."""
    app.add_exception_handler(Answered, _answered)


async def edge_configuration_writes(
    connection: HTTPConnection, node: NodeDep, placement: PlacementDep
) -> None:
    """On an edge, a configuration write goes to the master (an application-wide dependency).

    The whole configuration API is the master's to change, so this is decided for the
    collection prefixes rather than per route; a route that declares its own routing
    (:class:`RoutedBy`, such as ``POST /api/systems/{id}/exec``) is left to it.
    """
    scope = connection.scope
    if (
        not isinstance(connection, Request)  # the same object the route reads its body from
        or not node.settings.is_edge
        or scope["method"] in READ_METHODS
        or not CONFIG_PATH.match(scope["path"])
        or _declares_routing(scope.get("route"))
    ):
        return
    target = await placement.placement(None)
    await route(node, connection, target, node.settings.client_routing)


EDGE_CONFIGURATION_WRITES = Depends(edge_configuration_writes)


def _declares_routing(matched: object) -> bool:
    """Whether the route a request reached carries a :class:`RoutedBy` declaration."""
    return isinstance(matched, APIRoute) and any(
        isinstance(dependency.call, RoutedBy) for dependency in matched.dependant.dependencies
    )
