"""What the edge does as its link to the master comes up, goes down or cannot be made."""

from __future__ import annotations

import logging

from app.control.clock import now_utc
from app.edge.controller import EdgeController
from app.edge.follower import ReplicaFollower
from app.edge.uplink import HelloFacts
from app.edge.witness import MasterWitness
from app.link import LINK_STATES, Control, LinkConnection, LinkFailure, LinkReport, Welcome
from app.metrics import Metrics
from app.runtime.repository import DriverRepository

log = logging.getLogger(__name__)


class LinkEvents:
    """The edge's ``UplinkListener``: obeys the handshake, catches up, follows losses.

    It keeps the link's :class:`~app.link.LinkReport` (``link_state`` in ``/api/ready``
    and ``/control``, the ``engine_link_state`` metric). A failed attempt the master
    answered never starts the edge's modules (:mod:`app.control.edge`).
    """

    def __init__(
        self,
        controller: EdgeController,
        witness: MasterWitness,
        follower: ReplicaFollower,
        repository: DriverRepository,
        metrics: Metrics,
        *,
        link_retry_s: float,
    ) -> None:
        self._controller = controller
        self._witness = witness
        self._follower = follower
        self._repository = repository
        self._metrics = metrics
        self._link_retry_s = link_retry_s
        self.report = LinkReport.at_start(now_utc())
        self._show(self.report)

    def _show(self, report: LinkReport) -> None:
        self.report = report
        for state in LINK_STATES:
            self._metrics.link_state.labels(state).set(1 if state == report.state else 0)

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
        self._show(self.report.up(now_utc()))
        await self._controller.apply(lambda state: state.on_link_up())
        await self._controller.obey(control.controller, control.epoch)
        if not await self._follower.catch_up(link):
            self._follower.retry()  # in the background, with backoff

    async def disconnected(self, reason: str) -> None:
        log.warning("link to the master lost: %s", reason)
        self._show(self.report.dropped(reason, now_utc()))
        await self._controller.apply(lambda state: state.on_link_lost(now_utc()))
        self._witness.ask_soon()

    async def attempt_failed(self, failure: LinkFailure) -> None:
        """Follow the seed's "on disconnected" only when nothing answered.

        A duplicate refusal stops this process's modules (another process of this edge
        holds the link); any other answer of the master — to the link, or at its witness
        (:meth:`MasterWitness.master_answers`) — keeps the modules as they are, until the
        master is about to fail over, or, with failover off, starts them unless the
        master runs them, since the master will not.
        """
        self._show(self.report.failed(failure, now_utc()))
        controller = self._controller
        if failure.duplicate:
            if controller.modules_running:
                log.warning("another process of this edge holds the link: stopping the modules")
            await controller.apply(lambda state: state.on_duplicate())
            return
        witness, running = self._witness, controller.modules_running
        if not failure.master_alive and not running and await witness.master_controls():
            return
        alive = failure.master_alive or await witness.master_answers()
        if alive and running and await witness.master_takes_over_soon():
            await controller.apply(lambda state: state.on_master_controls())
            return
        if alive and not running and not await witness.master_may_run_them():
            alive = False  # failover is off and the master does not run them: nobody would
        retry_s = self._link_retry_s
        await controller.apply(
            lambda state: state.on_reconnect_failed(now_utc(), retry_s, master_alive=alive)
        )


def _head(repository: DriverRepository) -> str | None:
    try:
        return repository.head()
    except Exception:
        return None
