"""The FastAPI application: one app for both roles, the role picked at startup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import openapi
from app.logging_filters import install_redaction
from app.node import Node
from app.routers import (
    client_ws,
    control,
    device_keys,
    discovery,
    docs,
    driver_ops,
    drivers,
    edges,
    health,
    link_ws,
    module_ops,
    modules,
    panel,
    placeos,
    problems,
    routing,
    status,
    system_ops,
    systems,
    users,
)
from app.routers.limits import RequestLimits
from app.routers.middleware import BootGate, EngineHeaders
from app.routers.routing import EDGE_CONFIGURATION_WRITES
from app.settings import Settings, load_settings


def compose(settings: Settings) -> Node:
    """The master unless ``ENGINE_EDGE_ID`` names an edge, built by its composition root."""
    if settings.is_edge:
        from app.edge.compose import compose_edge

        return compose_edge(settings)
    from app.master.compose import compose_master

    return compose_master(settings)


def create_app(settings: Settings | None = None, *, node: Node | None = None) -> FastAPI:
    """Build the application; settings come from the environment unless given."""
    settings = settings or load_settings()
    install_redaction([settings.edge_secret, settings.admin_token])
    node = node or compose(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await node.start()
        try:
            yield
        finally:
            await node.stop()

    app = FastAPI(
        title="Engine HA",
        version=openapi.api_version(),
        summary="Building-automation control engine with master/edge high availability",
        lifespan=lifespan,
        # Served by app.routers.docs from local bundles: a site network has no CDN.
        docs_url=None,
        redoc_url=None,
        # Only an edge sends configuration writes elsewhere: the master skips the check.
        dependencies=[EDGE_CONFIGURATION_WRITES] if node.settings.is_edge else [],
    )
    app.state.node = node
    problems.install(app)
    routing.install(app)
    openapi.install(app)
    for module in (
        edges,
        control,
        systems,
        system_ops,
        modules,
        module_ops,
        drivers,
        driver_ops,
        users,
        device_keys,
    ):
        app.include_router(module.router, prefix="/api")
    app.include_router(discovery.router)
    app.include_router(health.router)
    status.install(app, node)
    panel.install(app, node)
    docs.install(app)
    app.include_router(client_ws.router)
    app.include_router(placeos.authority_router)
    app.include_router(placeos.router)
    app.include_router(link_ws.router)
    # Added innermost first: proxied requests forwarded before the framework, the boot
    # gate, then CORS around it (so redirects carry CORS headers a browser needs to
    # follow them), then the node header around all.
    app.add_middleware(routing.ForwardRouted, node=node, routes=routing.RoutedPaths(app))
    app.add_middleware(BootGate, boot=node.boot)
    app.add_middleware(RequestLimits, max_body=settings.max_document_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            allow_credentials=True,
            expose_headers=[
                "Location",
                "X-Engine-Node",
                "ETag",
                "Retry-After",
                "Link",
                "Preference-Applied",
            ],
            max_age=600,
        )
    if settings.is_edge:  # outside CORSMiddleware, which refuses other origins' preflights
        app.add_middleware(panel.PanelCors, origins=panel.panel_origins(settings.master_url))
    app.add_middleware(EngineHeaders, node_name=settings.node_name, metrics=node.metrics)
    return app


def app_factory() -> FastAPI:
    """For ``uvicorn --factory app.main:app_factory``."""
    return create_app()


def __getattr__(name: str) -> FastAPI:
    """``uvicorn app.main:app`` builds the app from the environment on first access."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
