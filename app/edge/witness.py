"""The edge asks the master's witness whether it runs the location's devices."""

from __future__ import annotations

import logging

from app.control.clock import now_utc
from app.edge.controller import EdgeController
from app.services.control import failover_timeout
from app.services.witness import Witness, WitnessReport
from app.settings import Settings
from app.store.base import Store, StoreError

log = logging.getLogger(__name__)


class MasterWitness:
    """Asks the master's witness while the link is down; yields the devices when told to."""

    def __init__(
        self,
        witness: Witness,
        settings: Settings,
        store: Store,
        controller: EdgeController,
        *,
        edge_id: str,
    ) -> None:
        self._witness = witness
        self._settings = settings
        self._store = store
        self._controller = controller
        self._edge_id = edge_id
        #: What the master's witness last said.
        self.report: WitnessReport | None = None

    async def master_controls(self) -> bool:
        """Ask the master's witness; True (and the devices left to it) when it runs them."""
        master_url = self._settings.master_url
        secret = self._settings.edge_secret
        if not master_url or not secret:
            return False
        self.report = await self._witness.ask(master_url, self._edge_id, [secret], self.report)
        if not self.report.controls:
            return False
        if self._controller.modules_running:
            log.warning("the master runs the location's devices (its witness says so): stopping")
        await self._controller.apply(lambda state: state.on_master_controls())
        return True

    async def locked_out(self) -> bool:
        """Whether the master, alive, refuses this edge and is about to take its devices.

        Both the link and the witness refuse the edge's secret (revoked, say): the master
        answers, so it is no partition, and it will fail over ``timeout`` after it lost
        the link. The edge yields two retry intervals before that moment, so the devices
        never have two controllers; an edge not linked since it booted cannot know that
        moment and yields at once. With failover off it keeps them.
        """
        report = self.report
        state = self._controller.state
        if report is None or report.result != "refused" or state.link_up:
            return False
        try:
            edge = await self._store.get(self._edge_id)
        except StoreError:
            return False
        if not edge.body.get("failover", True):
            return False
        margin = 2 * self._settings.link_retry_s
        waited = state.unlinked_for(now_utc())
        timeout = failover_timeout(edge)
        if waited < timeout - margin:
            return False
        if self._controller.modules_running:
            log.warning(
                "the master refuses this edge's secret and will take over its devices "
                "(failover after %s s): stopping them",
                timeout,
            )
        return True
