"""The edge's composition root: every collaborator built once, in dependency order."""

from __future__ import annotations

from starlette.websockets import WebSocket

from app.edge.placement import EdgePlacement
from app.edge.role import EdgeRole
from app.link import CLOSE_NOT_MASTER
from app.node import Node, Services
from app.services.modules import Locations, ModuleService
from app.services.operations import NoForwarding, Operations, no_fanout
from app.settings import Settings
from app.store.base import Store


class NoLinks:
    """An edge takes no control links: ``WS /api/edge/link`` is the master's."""

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.close(code=CLOSE_NOT_MASTER, reason="not the master")


def compose_edge(settings: Settings, store: Store | None = None) -> Node:
    """The edge: shared services, its modules, then the role."""
    services = Services(settings, store)
    modules = ModuleService(services.manager(), Locations(services.store))
    operations = Operations(
        services.catalog,
        modules,
        services.repository,
        fanout=no_fanout,
        forward=NoForwarding(),
    )
    role = EdgeRole(services, modules, operations)
    return Node(
        services,
        modules=modules,
        operations=operations,
        role=role,
        control=role,
        placement=EdgePlacement(role),
        links=NoLinks(),
    )
