"""The master's boot, in the order of DESIGN §5 (steps 1 to 5; the role completes 6)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from app.master.edges import SupervisedEdges
from app.master.links import LinkTable
from app.node import Services
from app.services.modules import ModuleService


@dataclass(frozen=True, slots=True)
class BootFacts:
    """What the boot found, for its summary."""

    edges: int
    edge_modules: int
    modules_failed: dict[str, str]


class MasterBoot:
    """Loads the edges, starts the master's own modules, waits for the edges to connect.

    While it runs the master is ``booting``: edges that connect are told so.
    """

    def __init__(
        self,
        services: Services,
        modules: ModuleService,
        edges: SupervisedEdges,
        links: LinkTable,
    ) -> None:
        self._services = services
        self._modules = modules
        self._edges = edges
        self._links = links
        self.booting = True
        #: The edges the boot waits for (known once step 1 has loaded them).
        self._awaited: set[str] | None = None
        self._all_connected = asyncio.Event()

    async def run(self) -> BootFacts:
        """Steps 1 to 5; raises whatever a step raised (the store unreadable, say)."""
        services, boot = self._services, self._services.boot
        boot.advance("1/6 loading edge locations")
        edges = (await services.store.find("edge")).items
        boot.advance("2/6 loading edge systems")
        topology = await self._modules.topology(fresh=True)
        boot.advance("3/6 listing edge modules")
        edge_modules = topology.modules_in([edge.id for edge in edges])
        if services.settings.admin_token:
            await services.auth.bootstrap_admin(services.settings.admin_token)
        boot.advance("4/6 starting the master's own modules")
        failures = await self._modules.take(None)
        for edge in edges:
            await self._edges.supervise(edge)
        boot.advance("5/6 waiting for edges to connect")
        boot.expected_wait_s = services.settings.boot_wait_s
        self._awaited = {edge.id for edge in edges}
        self.link_changed()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(services.settings.boot_wait_s):
                await self._all_connected.wait()
        await self._edges.boot_wait_over()
        self.booting = False
        return BootFacts(len(edges), len(edge_modules), failures)

    def link_changed(self) -> None:
        """End the boot wait once every edge known at boot is connected."""
        if self._awaited is not None and self._awaited <= set(self._links.connected()):
            self._all_connected.set()
