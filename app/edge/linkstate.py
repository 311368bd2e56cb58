"""What the edge does as its link to the master comes up, goes down or cannot be made."""

from __future__ import annotations

import logging
from datetime import datetime

from app.control.clock import now_utc
from app.edge.controller import EdgeController
from app.edge.follower import ReplicaFollower
from app.edge.uplink import HelloFacts
from app.edge.witness import MasterWitness
from app.link import Control, LinkConnection, Welcome
from app.runtime.repository import DriverRepository

log = logging.getLogger(__name__)


class LinkEvents:
    """The edge's ``UplinkListener``: obeys the handshake, catches up, follows losses."""

    def __init__(
        self,
        controller: EdgeController,
        witness: MasterWitness,
        follower: ReplicaFollower,
        repository: DriverRepository,
        *,
        link_retry_s: float,
    ) -> None:
        self._controller = controller
        self._witness = witness
        self._follower = follower
        self._repository = repository
        self._link_retry_s = link_retry_s
        #: Why the link was last refused or failed; None while it is up.
        self.error: tuple[str, datetime] | None = None

    def hello_facts(self) -> HelloFacts:
        return HelloFacts(
            devices_loaded=self._controller.modules_running,
            replica_seq=self._follower.replica.seq,
            commit=_head(self._repository),
        )

    async def connected(self, link: LinkConnection, welcome: Welcome, control: Control) -> None:
        """Obey the handshake's control first, then catch up: a long or failing catch-up
        must never keep the location from its devices, nor drop the link."""
        log.info(
            "linked to the master (booting: %s); control: %s",
            welcome.master_booting,
            control.controller,
        )
        self.error = None
        await self._controller.apply(lambda state: state.on_link_up())
        await self._controller.obey(control.controller, control.epoch)
        if not await self._follower.catch_up(link):
            self._follower.retry()  # in the background, with backoff

    async def disconnected(self, reason: str) -> None:
        log.warning("link to the master lost: %s", reason)
        self.error = (reason, now_utc())
        await self._controller.apply(lambda state: state.on_link_lost(now_utc()))
        if self._controller.modules_running:
            await self._witness.master_controls()

    async def attempt_failed(self, reason: str, *, refused: bool) -> None:
        self.error = (reason, now_utc())
        if await self._witness.master_controls():
            return
        if refused and await self._witness.locked_out():
            await self._controller.apply(lambda state: state.on_master_controls())
            return
        retry_s = self._link_retry_s
        await self._controller.apply(lambda state: state.on_reconnect_failed(now_utc(), retry_s))


def _head(repository: DriverRepository) -> str | None:
    try:
        return repository.head()
    except Exception:
        return None
