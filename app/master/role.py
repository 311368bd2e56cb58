"""The master role: boot in the order of DESIGN §5, then supervise every edge.

Boot runs in the background so the control-link endpoint can take edges while the
master waits for them (step 5); the API answers 503 until step 6. Each job is its own
class, built by :mod:`app.master.compose`: this one starts and stops them in order.
"""

from __future__ import annotations

import logging
from typing import Any

from app.master.boot import MasterBoot
from app.master.edges import SupervisedEdges
from app.master.links import LinkTable
from app.master.watcher import ConfigurationWatcher
from app.master.witnesses import WitnessAsker
from app.node import Services
from app.services.modules import ModuleService

log = logging.getLogger(__name__)


class MasterRole:
    """Runs the boot, then the witness asker and the configuration watcher, until stopped."""

    def __init__(
        self,
        services: Services,
        modules: ModuleService,
        boot: MasterBoot,
        edges: SupervisedEdges,
        links: LinkTable,
        witnesses: WitnessAsker,
        watcher: ConfigurationWatcher,
    ) -> None:
        self._services = services
        self._modules = modules
        self._boot = boot
        self._edges = edges
        self._links = links
        self._witnesses = witnesses
        self._watcher = watcher
        self._tasks = services.tasks

    async def start(self) -> None:
        self._tasks.spawn(self._run(), name="master boot", forever=False)
        self._tasks.spawn(self._services.certificates.run(), name="certificates")

    async def _run(self) -> None:
        boot = self._services.boot
        try:
            facts = await self._boot.run()
            self._edges.windows.start()
            self._tasks.spawn(self._witnesses.run(), name="witnesses")
            self._tasks.spawn(self._watcher.run(), name="change watch")
            await self._links.broadcast("master.ready")
            boot.complete(
                role="master",
                edges=facts.edges,
                edges_connected=len(self._links.connected()),
                edge_modules=facts.edge_modules,
                modules_running=len(self._modules.manager.running_ids()),
                modules_failed=facts.modules_failed,
            )
            self._services.metrics.ready.set(1)
            log.info("master booted: %s", boot.summary)
        except Exception:
            boot.advance("boot failed: see the log")
            raise  # logged with its traceback by the task's supervision

    async def stop(self) -> None:
        self._services.metrics.ready.set(0)
        await self._tasks.stop()
        self._edges.close()
        await self._links.close_all()

    def live_counts(self) -> dict[str, Any]:
        """The master's part of ``/api/ready``: edges known and connected now."""
        return {
            "edges": len(self._edges.supervisors),
            "edges_connected": len(self._links.connected()),
        }
