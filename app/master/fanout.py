"""Driver reloads reach every server that runs the driver (DESIGN §4)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.master.role import MasterRole

log = logging.getLogger(__name__)


class EdgeReloads:
    """After the master reloads a driver, the connected edges running it reload too."""

    def __init__(self, role: MasterRole) -> None:
        self._role = role

    async def __call__(self, driver_id: str, files: dict[str, str] | None) -> dict[str, Any]:
        role = self._role
        topology = await role.node.modules.topology()
        edges = {
            location
            for module_id, location in topology.module_locations.items()
            if location is not None
            and module_id in topology.modules
            and topology.modules[module_id].body.get("driver_id") == driver_id
        }
        targets = [(edge_id, role.links.get(edge_id)) for edge_id in sorted(edges)]
        results = await asyncio.gather(
            *(
                link.request("reload", {"driver_id": driver_id, "files": files})
                for _, link in targets
                if link is not None
            ),
            return_exceptions=True,
        )
        linked = [edge_id for edge_id, link in targets if link is not None]
        report: dict[str, Any] = {
            edge_id: {"error": "not connected"} for edge_id, link in targets if link is None
        }
        for edge_id, result in zip(linked, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("reloading driver %s on edge %s failed: %s", driver_id, edge_id, result)
                report[edge_id] = {"error": str(result)}
            else:
                report[edge_id] = result
        return report
