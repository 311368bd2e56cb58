"""The edge's boot, in the order of DESIGN §5: its location, systems, modules, the link."""

from __future__ import annotations

import logging

from app.edge.replica import Replica
from app.node import Services
from app.services.modules import ModuleService
from app.store.base import DocumentNotFound

log = logging.getLogger(__name__)


class EdgeBoot:
    """Loads the location from the local replica; complete once the replica has synced."""

    def __init__(
        self, services: Services, modules: ModuleService, replica: Replica, *, edge_id: str
    ) -> None:
        self._services = services
        self._modules = modules
        self._replica = replica
        self._edge_id = edge_id

    async def load(self) -> int | None:
        """Steps 1 to 3, up to connecting; the modules it controls, None if never synced."""
        boot = self._services.boot
        boot.advance("1/4 loading this edge's location")
        try:
            await self._services.store.get(self._edge_id)
            known = True
        except DocumentNotFound:
            known = False
        boot.advance("2/4 loading the systems under its control")
        topology = await self._modules.topology(fresh=True)
        boot.advance("3/4 listing the modules it controls")
        modules = topology.modules_in([self._edge_id])
        boot.advance("4/4 connecting to the master")
        return len(modules) if known else None

    def finish(self, modules: int | None) -> None:
        """Complete the boot, or wait for the first sync when the replica is empty."""
        if modules is not None:
            self._complete(modules)
            return
        why = "never synced"
        if self._replica.set_aside is not None:
            why = f"its corrupt replica was moved to {self._replica.set_aside.moved_to}"
        log.warning(
            "edge %s has no replica of its configuration (%s); it keeps trying to reach %s",
            self._edge_id,
            why,
            self._services.settings.master_url,
        )
        self._services.boot.advance(f"waiting for the first sync with the master ({why})")

    def failed(self) -> None:
        """Boot could not read the location from the replica (the error is logged)."""
        self._services.boot.advance("boot failed: see the log")

    async def synced(self) -> None:
        """A catch-up succeeded: a boot waiting for its first sync is complete."""
        if not self._services.boot.ready:
            topology = await self._modules.topology(fresh=True)
            self._complete(len(topology.modules_in([self._edge_id])))

    def _complete(self, modules: int) -> None:
        self._services.boot.complete(
            role="edge", edge_id=self._edge_id, modules=modules, replica_seq=self._replica.seq
        )
        self._services.metrics.ready.set(1)
