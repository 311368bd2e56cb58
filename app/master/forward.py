"""Operations the master passes on to edges: driver reloads, start and stop."""

from __future__ import annotations

import asyncio
import logging

from app.link import LinkClosed, LinkConnection
from app.link.ops import MODULE_START, MODULE_STOP, RELOAD, SYSTEM_START, SYSTEM_STOP
from app.master.links import LinkTable
from app.runtime.reports import DriverReloaded, ModuleDescription, ReloadFailed
from app.services.modules import ModuleService

log = logging.getLogger(__name__)


class EdgeReloads:
    """After the master reloads a driver, the connected edges running it reload too."""

    def __init__(self, modules: ModuleService, links: LinkTable) -> None:
        self._modules = modules
        self._links = links

    async def __call__(
        self, driver_id: str, files: dict[str, str] | None
    ) -> dict[str, DriverReloaded | ReloadFailed]:
        topology = await self._modules.topology()
        edges = {
            location
            for module_id, location in topology.module_locations.items()
            if location is not None
            and module_id in topology.modules
            and topology.modules[module_id].body.get("driver_id") == driver_id
        }
        targets = [(edge_id, self._links.get(edge_id)) for edge_id in sorted(edges)]
        results = await asyncio.gather(
            *(
                RELOAD.call(link, {"driver_id": driver_id, "files": files})
                for _, link in targets
                if link is not None
            ),
            return_exceptions=True,
        )
        linked = [edge_id for edge_id, link in targets if link is not None]
        report: dict[str, DriverReloaded | ReloadFailed] = {
            edge_id: {"error": "not connected"} for edge_id, link in targets if link is None
        }
        for edge_id, result in zip(linked, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("reloading driver %s on edge %s failed: %s", driver_id, edge_id, result)
                report[edge_id] = {"error": str(result)}
            else:
                report[edge_id] = result
        return report


class LinkForwarder:
    """Start and stop edge modules over the control link, for edges with no public URL.

    Client routing answers such requests on the master (there is nowhere to send the
    client); the calls themselves go to the edge that runs the modules.
    """

    def __init__(self, modules: ModuleService, links: LinkTable) -> None:
        self._modules = modules
        self._links = links

    def edge_for_module(self, module_id: str) -> str | None:
        topology = self._modules.cached_topology
        return self._linked(topology.module_locations.get(module_id) if topology else None)

    def edge_for_system(self, system_id: str) -> str | None:
        topology = self._modules.cached_topology
        return self._linked(topology.location_of_system(system_id) if topology else None)

    async def start_module(self, edge_id: str, module_id: str) -> ModuleDescription:
        return await MODULE_START.call(self._link(edge_id), {"module_id": module_id})

    async def stop_module(self, edge_id: str, module_id: str) -> ModuleDescription:
        return await MODULE_STOP.call(self._link(edge_id), {"module_id": module_id})

    async def start_system(self, edge_id: str, system_id: str) -> dict[str, str]:
        answer = await SYSTEM_START.call(self._link(edge_id), {"system_id": system_id})
        return dict(answer.get("failed", {}))

    async def stop_system(self, edge_id: str, system_id: str) -> None:
        await SYSTEM_STOP.call(self._link(edge_id), {"system_id": system_id})

    def _link(self, edge_id: str) -> LinkConnection:
        """Raises `LinkClosed` when the edge's link is down."""
        link = self._links.get(edge_id)
        if link is None:
            raise LinkClosed(f"edge {edge_id!r}")
        return link

    def _linked(self, edge_id: str | None) -> str | None:
        """The edge, when it runs the location now and its link is up."""
        if edge_id is None or self._modules.runs(edge_id):
            return None
        return edge_id if self._links.get(edge_id) is not None else None
