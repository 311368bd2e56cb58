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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, APIWebSocketRoute, RouteContext, iter_route_contexts
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, HTTPConnection
from starlette.responses import Response
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import (
    BadGateway,
    ControlledElsewhere,
    EngineError,
    GatewayTimeout,
    Unavailable,
)
from app.node import Node
from app.routers.deps import NodeDep, PlacementDep, RoomUser, presented_token
from app.routers.problems import error_response, unexpected_error_response
from app.services.auth import require_room
from app.services.routing import (
    Local,
    Placement,
    Preference,
    Proxy,
    Redirect,
    Route,
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
#: What of an upstream answer is not relayed, as raw header names (the body is relayed
#: as it came, so its length is).
NOT_RELAYED = frozenset(name.encode() for name in HOP_BY_HOP | SET_BY_THIS_SERVER) - {
    b"content-length"
}


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

    async def __call__(self, request: Request, node: NodeDep, _user: RoomUser) -> None:
        target = await self.placement(node, request.path_params)
        await route(node, request, target, self.default(node))

    async def placement(self, node: Node, path_params: Mapping[str, str]) -> Placement:
        """Where the target named in ``path_params`` is controlled."""
        target_id = path_params[self.param]
        topology = await node.modules.topology()
        if self.kind == "module":
            location = topology.module_locations.get(target_id)
        else:
            location = topology.location_of_system(target_id)
        return await node.placement.placement(location)

    def default(self, node: Node) -> Preference:
        return self.prefer or node.settings.client_routing


#: The declarations of the native runtime routes: ``dependencies=[BY_MODULE]``.
BY_MODULE = Depends(RoutedBy("module", "module_id"))
BY_SYSTEM = Depends(RoutedBy("system", "system_id"))


async def route(node: Node, request: Request, target: Placement, default: Preference) -> None:
    """Return when this server answers the request.

    Otherwise raises ``ControlledElsewhere`` (307), ``Unavailable`` (503),
    ``GatewayTimeout`` or ``BadGateway`` (the proxied controller failed), or
    ``Answered`` with the controller's proxied response.
    """
    decision, applied = _decision(request, target, default)
    if isinstance(decision, Local):
        return
    if isinstance(decision, Proxy):
        raise Answered(await _proxied(node, request, decision, applied))
    error: EngineError
    if isinstance(decision, Redirect):
        location = decision.base_url + request.url.path
        if request.url.query:
            location += "?" + request.url.query
        error = ControlledElsewhere(
            f"{target.name} controls this: follow Location", location=location
        )
    else:
        error = Unavailable(
            decision.detail, retry_after=decision.retry_after, controller=target.name
        )
    error.headers.update(applied)
    raise error


def _decision(
    request: Request, target: Placement, default: Preference
) -> tuple[Route, dict[str, str]]:
    """The routing decision, and the ``Preference-Applied`` header when the client asked."""
    preference, asked = preference_from(request.headers.get("prefer"), default)
    applied = {"Preference-Applied": f"routing={preference}"} if asked else {}
    return decide(target, preference), applied


async def _proxied(node: Node, request: Request, route: Proxy, applied: dict[str, str]) -> Response:
    """The controller's answer; raises ``EngineError`` (carrying ``applied``) when it fails."""
    try:
        return await _proxy(node, request, route, applied)
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
        upstream = await client.forward(upstream_request)
    except httpx.TimeoutException:
        raise GatewayTimeout(
            f"{route.name} did not answer in time", controller=route.name
        ) from None
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"{route.name} cannot be reached: {type(exc).__name__}", controller=route.name
        ) from None
    # The client has read the whole body (the proxied endpoints answer small JSON): one
    # plain response of those bytes, its headers relayed as bytes, nothing re-parsed.
    relayed = [(name.lower(), value) for name, value in upstream.headers]
    if upstream.status_code >= 500 and all(name != b"x-engine-node" for name, _ in relayed):
        raise BadGateway(f"{route.name} failed with {upstream.status_code}", controller=route.name)
    response = Response(upstream.body, status_code=upstream.status_code)
    response.raw_headers = [(name, value) for name, value in relayed if name not in NOT_RELAYED]
    response.raw_headers.append((b"via", f"1.1 {node.settings.node_name}".encode()))
    response.raw_headers += [(k.lower().encode(), v.encode()) for k, v in applied.items()]
    return response


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
        or not sent_to_master(scope["method"], scope["path"])
        or _declares_routing(scope.get("route"))
    ):
        return
    target = await placement.placement(None)
    await route(node, connection, target, node.settings.client_routing)


EDGE_CONFIGURATION_WRITES = Depends(edge_configuration_writes)


def sent_to_master(method: str, path: str) -> bool:
    """Whether an edge sends a request to the master: a configuration write (unless its
    route declares routing of its own)."""
    return method not in READ_METHODS and CONFIG_PATH.match(path) is not None


def routing_declaration(route: object) -> RoutedBy | None:
    """The :class:`RoutedBy` declaration among a route's dependencies, if it has one."""
    dependant = getattr(route, "dependant", None)
    for dependency in dependant.dependencies if dependant is not None else ():
        if isinstance(dependency.call, RoutedBy):
            return dependency.call
    return None


def _declares_routing(matched: object) -> bool:
    """Whether the route a request reached carries a :class:`RoutedBy` declaration."""
    return isinstance(matched, APIRoute) and routing_declaration(matched) is not None


@dataclass(frozen=True, slots=True)
class _Path:
    """A route as the router matches it: its path, its methods, its routing declaration."""

    pattern: re.Pattern[str]
    #: None for what matches any method (a mount): a request it matches is left alone.
    methods: frozenset[str] | None
    declaration: RoutedBy | None
    route: BaseRoute | None = None


class RoutedPaths:
    """The application's routes in matching order, and which of them declare routing."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._paths: list[_Path] | None = None
        self._routed: list[tuple[int, _Path]] = []

    def declaration(self, method: str, path: str) -> tuple[_Path, dict[str, str]] | None:
        """The route the router would pick when it declares routing, and its path parameters.

        None when that route declares no routing, or could be another than the one
        found here (then the router decides, as for every other request).
        """
        paths = self._load()
        for index, candidate in self._routed:
            match = candidate.pattern.match(path)
            if match is None or method not in (candidate.methods or ()):
                continue
            if any(_takes(earlier, method, path) for earlier in paths[:index]):
                return None
            return candidate, match.groupdict()
        return None

    def _load(self) -> list[_Path]:
        """Read from the application on first use: every route is included by then."""
        if self._paths is None:
            self._paths = [
                path for path in map(_path, iter_route_contexts(self._app.routes)) if path
            ]
            self._routed = [(i, p) for i, p in enumerate(self._paths) if p.declaration is not None]
        return self._paths


def _path(route: RouteContext) -> _Path | None:
    if isinstance(route.original_route, WebSocketRoute | APIWebSocketRoute):
        return None  # never matches an HTTP request
    pattern = getattr(route, "path_regex", None)
    if pattern is None:
        return _Path(re.compile(""), None, None)  # unknown: matches everything, decides nothing
    methods = getattr(route, "methods", None)
    return _Path(
        pattern,
        frozenset(methods) if methods is not None else None,
        routing_declaration(route),
        route.original_route,
    )


def _takes(route: _Path, method: str, path: str) -> bool:
    """Whether ``route`` would answer the request before a later route could."""
    return route.pattern.match(path) is not None and (
        route.methods is None or method in route.methods
    )


class ForwardRouted:
    """ASGI, inside the request limits and the boot gate: a routed request that routing
    proxies is forwarded here, before FastAPI handles it.

    The decision is the route's own (its :class:`RoutedBy` declaration, taken after
    authentication, as in the dependency); only the framework's work around it is
    skipped — route matching, dependency solving, reading and parsing the body that only
    has to be passed on — which cost the master more than the forward itself
    (bench/README.md §3). A request that is not routed, whose token does not
    authenticate, or whose decision is anything but a proxy goes on to FastAPI, which
    decides again and answers it (401, 307, 503, or here) as it answers every request.
    """

    def __init__(self, app: ASGIApp, *, node: Node, routes: RoutedPaths) -> None:
        self.app = app
        self._node = node
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            response = await self._forwarded(scope, receive)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _forwarded(self, scope: Scope, receive: Receive) -> Response | None:
        found = self._routes.declaration(scope["method"], scope["path"])
        if found is None:
            return None
        matched, path_params = found
        declaration = matched.declaration
        assert declaration is not None
        node = self._node
        request = Request(scope, receive)
        try:
            principal = await node.auth.authenticate(await presented_token(request))
            require_room(principal, path_params.get("system_id"))
            target = await declaration.placement(node, path_params)
        except Exception:  # refused, or the store failed: FastAPI asks again and answers
            return None
        decision, applied = _decision(request, target, declaration.default(node))
        if not isinstance(decision, Proxy):
            return None
        # As the router would have: the metrics count the answer under its operation.
        scope["route"], scope["path_params"] = matched.route, path_params
        try:
            return await _proxied(node, request, decision, applied)
        except EngineError as error:
            return error_response(error)
        except (HTTPException, ClientDisconnect):
            raise  # the body over the limit (413, answered outside) or the client gone
        except Exception as exc:  # as the application's last exception handler answers
            return unexpected_error_response(exc)
