"""The room panel at ``/panel/`` (masters only), and what an edge lets it call.

The panel is static files shipped in :mod:`app.panel`: a page, its script and style, a
service worker that keeps them on the device, a web app manifest and icons. Every
file is revalidated at each use (``Cache-Control: no-cache`` with an ``ETag``), so a
device with the master reachable picks up a new panel at its next visit, and the
service worker answers from its cache only when the master does not answer. The
page's ``Content-Security-Policy`` allows this server and nothing else, except that
the panel may connect to the edges' public URLs, where it follows its room.

Edges serve no interface (the seed: "edge server only services API"), so they do not
install these routes and ``/panel/`` is a 404 there. Instead :class:`PanelCors` lets a
panel loaded from a master (its origin is ``ENGINE_MASTER_URL``'s) call the few routes
it uses — discovery, state, funcs and exec of a system — and nothing else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import NotFound
from app.node import Node
from app.routers.conditional import matches_none
from app.routers.deps import NodeDep

PANEL_DIR = Path(str(files("app.panel") / "static"))

#: The panel's files and their media types (the page itself is ``index.html``).
MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "panel.js": "text/javascript; charset=utf-8",
    "panel.css": "text/css; charset=utf-8",
    "sw.js": "text/javascript; charset=utf-8",
    "manifest.webmanifest": "application/manifest+json",
    "icon.svg": "image/svg+xml",
    "icon-192.png": "image/png",
    "icon-512.png": "image/png",
}

#: Each use asks the server whether the copy is current (a 304 costs a few bytes).
CACHE_CONTROL = "no-cache"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets(directory: Path = PANEL_DIR) -> dict[str, Asset]:
    """The panel's files, read once: they change only with the package."""
    assets = {}
    for name, media_type in MEDIA_TYPES.items():
        body = (directory / name).read_bytes()
        digest = hashlib.blake2b(body, digest_size=12).hexdigest()
        assets[name] = Asset(body, media_type, f'"{digest}"')
    return assets


def origin_of(url: str) -> str:
    """``https://Host:443/x`` → ``https://host``: a URL's origin as a browser sends it."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    port = parts.port
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def websocket_origin(origin: str) -> str:
    scheme, _, rest = origin.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}"


def content_security_policy(edge_urls: Iterable[str]) -> str:
    """This server only; connections also to the edges, where the panel follows its room."""
    origins = sorted({origin_of(url) for url in edge_urls if url})
    edges = [o for origin in origins for o in (origin, websocket_origin(origin))]
    connect = " ".join(["'self'", *edges])
    return (
        f"default-src 'self'; connect-src {connect}; img-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


router = APIRouter(include_in_schema=False)


def install(app: FastAPI, node: Node) -> None:
    """Serve the panel on a master; an edge serves none (404)."""
    if node.settings.is_edge:
        return
    app.state.panel_assets = load_assets()
    app.include_router(router)


@router.get("/panel")
async def without_slash(request: Request) -> Response:
    query = f"?{request.url.query}" if request.url.query else ""
    return Response(status_code=308, headers={"Location": f"/panel/{query}"})


@router.api_route("/panel/", methods=["GET", "HEAD"])
async def page(request: Request, node: NodeDep) -> Response:
    edges = await node.store.find("edge")
    policy = content_security_policy(str(doc.body.get("api_url") or "") for doc in edges.items)
    # The policy names the edges: a page revalidated after an edge moved must get the new one.
    return _asset(request, "index.html", {"Content-Security-Policy": policy}, variant=policy)


@router.api_route("/panel/{name}", methods=["GET", "HEAD"])
async def asset(request: Request, name: str) -> Response:
    if name == "index.html" or name not in MEDIA_TYPES:
        raise NotFound(f"the panel has no file {name!r}")
    return _asset(request, name, {"Content-Security-Policy": content_security_policy(())})


def _asset(request: Request, name: str, headers: dict[str, str], variant: str = "") -> Response:
    asset: Asset = request.app.state.panel_assets[name]
    etag = asset.etag
    if variant:
        etag = f'{etag[:-1]}-{hashlib.blake2b(variant.encode(), digest_size=6).hexdigest()}"'
    headers = {
        **headers,
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
    }
    if matches_none(request, etag):
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else asset.body
    response = Response(body, media_type=asset.media_type, headers=headers)
    if request.method == "HEAD":
        response.headers["Content-Length"] = str(len(asset.body))
    return response


#: What a panel calls on an edge: discovery, state, funcs and exec of a system.
PANEL_PATHS = re.compile(r"^/api/systems/[^/]+/(servers|state|funcs|exec)$")
PANEL_METHODS = frozenset({"GET", "HEAD", "POST"})
PANEL_HEADERS = frozenset({"x-api-key", "content-type", "prefer"})


def panel_origins(master_url: str | None) -> frozenset[str]:
    """The origins a panel is served from: the masters' (``ENGINE_MASTER_URL``)."""
    return frozenset(origin_of(url) for url in (master_url or "").split(",") if url.strip())


class PanelCors:
    """On an edge: CORS for the panel's origin on the panel's routes only.

    A preflight is answered here (204, allowing exactly the panel's methods and
    headers, no credentials: the panel sends its key in ``X-API-Key``); other
    requests go on and their answer names the origin. Any other origin or path is left
    to what comes next (``ENGINE_CORS_ORIGINS``, if set).
    """

    def __init__(self, app: ASGIApp, *, origins: frozenset[str]) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not PANEL_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin not in self.origins:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(headers, origin)(scope, receive, send)
            return

        async def send_allowed(message: Message) -> None:
            if message["type"] == "http.response.start":
                allowed = MutableHeaders(scope=message)
                allowed["Access-Control-Allow-Origin"] = origin
                allowed["Access-Control-Expose-Headers"] = "Retry-After, X-Engine-Node"
                allowed.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_allowed)

    def _preflight(self, headers: Headers, origin: str) -> Response:
        method = headers["access-control-request-method"].upper()
        asked = {
            name.strip().lower()
            for name in headers.get("access-control-request-headers", "").split(",")
            if name.strip()
        }
        if method not in PANEL_METHODS or not asked <= PANEL_HEADERS:
            return Response(status_code=403, headers={"Vary": "Origin"})
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ", ".join(sorted(PANEL_METHODS)),
                "Access-Control-Allow-Headers": ", ".join(sorted(PANEL_HEADERS)),
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )
