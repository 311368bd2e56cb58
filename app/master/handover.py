"""What a supervisor asks of the rest of the master to move an edge's devices."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from app.control.state import ControlState
from app.link import LinkConnection
from app.master.links import LinkTable
from app.master.remote import StatusMirror
from app.services.modules import ModuleService

log = logging.getLogger(__name__)


class ModuleHandover:
    """Starts and stops an edge's modules on the master, with the status they carry."""

    def __init__(self, modules: ModuleService, links: LinkTable, mirror: StatusMirror) -> None:
        self._modules = modules
        self._links = links
        self._mirror = mirror

    def link(self, edge_id: str) -> LinkConnection | None:
        return self._links.get(edge_id)

    async def start_modules(self, edge_id: str, status: Mapping[str, Any]) -> None:
        await self._modules.take(edge_id, status=status)

    async def stop_modules(self, edge_id: str) -> dict[str, dict[str, Any]]:
        return await self._modules.release(edge_id)

    def mirrored_status(self, edge_id: str) -> dict[str, dict[str, Any]]:
        topology = self._modules.cached_topology
        if topology is None:
            return {}
        return self._mirror.snapshot(topology.modules_in([edge_id]))

    def control_changed(self, edge_id: str, state: ControlState) -> None:
        log.info(
            "edge %s: controller %s (epoch %d): %s",
            edge_id,
            state.controller,
            state.epoch,
            state.reason,
        )
