"""The edge asks the master's witness whether it runs the location's devices."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from app.control.clock import now_utc
from app.control.edge import yield_due
from app.edge.controller import EdgeController
from app.edge.uplink import CurrentLink
from app.services.control import failover_timeout, persisted_state
from app.services.witness import Witness, WitnessReport
from app.settings import Settings
from app.store.base import Store, StoreError

log = logging.getLogger(__name__)


class MasterWitness:
    """Asks the master's witness while the link is down; yields the devices when told to.

    While the link is down it asks every ``ENGINE_PING_INTERVAL_S`` whatever the link's
    attempts are doing, each question in a task of its own bounded by
    ``ENGINE_WITNESS_TIMEOUT_S``: a slow question never delays the next, so a master
    that took over is heard within one interval plus that timeout on any path the
    network leaves (README: Architecture, the witness). Answers are taken in the order
    the questions were asked; a late answer to an older question changes nothing.

    An answer "the master controls" makes a running edge stop at once when the
    master's witness answered just before (a one-way network, a link-only fault: the
    link's path is broken, and the master took over as the edge watched). When the
    master was out of reach just before, the network is coming back: the link is
    retried at once and the reconnect negotiates (the edge, its devices loaded, wins:
    DESIGN §5); only if the next answer still finds the link down does the edge stop.
    """

    def __init__(
        self,
        witness: Witness,
        settings: Settings,
        store: Store,
        controller: EdgeController,
        current: CurrentLink,
        *,
        edge_id: str,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._witness = witness
        self._current = current
        self._settings = settings
        self._store = store
        self._controller = controller
        self._edge_id = edge_id
        self._clock = clock
        #: What the master's witness last said.
        self.report: WitnessReport | None = None
        #: The last time the master's witness asked this edge and heard it controls its
        #: devices: the master holds its failover off until ``timeout`` after that.
        self.vouched_at: datetime | None = None
        #: The last time the master's witness asked this edge at all (it reaches us).
        self.master_asked_at: datetime | None = None
        self._asked = 0
        self._settled = 0
        self._questions: set[asyncio.Task[bool]] = set()
        interval, timeout = settings.ping_interval_s, settings.witness_timeout_s
        self._max_in_flight = math.ceil(timeout / interval) + 1

    async def run(self) -> None:
        """Ask every ping interval while the link is down."""
        try:
            while True:
                await asyncio.sleep(self._settings.ping_interval_s)
                if not self._controller.state.link_up:
                    self.ask_soon()
        finally:
            for question in self._questions:
                question.cancel()

    def ask_soon(self) -> None:
        """Ask in the background now, unless as many questions as can be useful wait."""
        if len(self._questions) >= self._max_in_flight:
            return
        question = asyncio.create_task(self.master_controls(), name="master witness")
        self._questions.add(question)
        question.add_done_callback(self._asked_done)

    def _asked_done(self, question: asyncio.Task[bool]) -> None:
        self._questions.discard(question)
        if not question.cancelled() and question.exception() is not None:
            log.error("asking the master's witness failed", exc_info=question.exception())

    def master_asked(self, *, controls: bool) -> None:
        """The master's witness asked this edge (with the right proof) and heard ``controls``."""
        self.master_asked_at = self._clock()
        if controls:
            self.vouched_at = self.master_asked_at

    async def master_answers(self) -> bool:
        """Whether the master lately proved it is there without saying what it runs.

        Its witness refused the question or showed a certificate this edge does not
        trust; or it asked this edge's witness itself while its last word before the
        link went was that it holds the devices (it asks while it holds them, and
        decides). Either way the master is no outage, whatever the link's attempt met.
        """
        settings = self._settings
        window = timedelta(seconds=2 * (settings.ping_interval_s + settings.witness_timeout_s))
        now, report = self._clock(), self.report
        if report is not None and report.result in ("refused", "tls"):
            return now - report.checked_at <= window
        asked = self.master_asked_at
        if asked is None or now - asked > window:
            return False
        state = await persisted_state(self._store, self._edge_id)
        return bool(state.get("controller") == "master")

    async def master_controls(self) -> bool:
        """Ask the master's witness; True (and the devices left to it) when it runs them."""
        master_url = self._settings.master_url
        secret = self._settings.edge_secret
        if not master_url or not secret:
            return False
        self._asked += 1
        asked = self._asked
        report = await self._witness.ask(master_url, self._edge_id, [secret], self.report)
        if asked < self._settled:
            return False  # a newer question was answered first: this answer is stale
        self._settled, previous, self.report = asked, self.report, report
        if not report.controls:
            return False
        if self._controller.modules_running:
            if not self._answered_before(previous, report):
                log.info("the master is back in reach and runs the devices: reconnecting first")
                self._current.retry_now()
                return False
            log.warning("the master runs the location's devices (its witness says so): stopping")
        await self._controller.apply(lambda state: state.on_master_controls())
        return True

    def _answered_before(self, previous: WitnessReport | None, report: WitnessReport) -> bool:
        """False only when the question just before this one found the master out of reach.

        Without a recent question (this edge was frozen, or its link just dropped) the
        master took over while this edge was not looking: it stops at once.
        """
        window = 2 * (self._settings.ping_interval_s + self._settings.witness_timeout_s)
        if previous is None or (report.checked_at - previous.checked_at).total_seconds() > window:
            return True
        return previous.result != "unreachable"

    async def master_may_run_them(self) -> bool:
        """Whether the master, alive but not letting this edge link, runs the devices or
        may take them: failover is on, or its witness (else its last word before the link
        went) says it runs them. With failover off and the master not running them,
        nobody would if this edge did not."""
        report = self.report
        if report is not None and report.controls:
            return True
        try:
            edge = await self._store.get(self._edge_id)
        except StoreError:
            return True
        if edge.body.get("failover", True):
            return True
        if report is not None and report.verified:
            return False
        state = await persisted_state(self._store, self._edge_id)
        return bool(state.get("controller") == "master")

    async def master_takes_over_soon(self) -> bool:
        """Whether the master, alive but not letting this edge link, is about to fail over.

        The master answered (its certificate not trusted, a refusal): it is no
        partition, and it takes the devices ``timeout`` after the edge's last sign of
        life unless failover is off. The edge yields two retry intervals before that
        moment (:func:`app.control.edge.yield_due`), so the devices get a short gap
        rather than two controllers; an edge not linked since it booted cannot know when
        the link went and yields at once. While the master's witness keeps hearing that
        the edge runs them, the master holds off and so does the edge.
        """
        state = self._controller.state
        if state.link_up:
            return False
        try:
            edge = await self._store.get(self._edge_id)
        except StoreError:
            return False
        if not edge.body.get("failover", True):
            return False
        timeout, now = failover_timeout(edge), self._clock()
        due = yield_due(
            now,
            unlinked_s=state.unlinked_for(now),
            vouched_at=self.vouched_at,
            timeout=timeout,
            margin=2 * self._settings.link_retry_s,
        )
        if due and self._controller.modules_running:
            log.warning(
                "the master answers but does not let this edge link, and will take over its "
                "devices (failover after %s s): stopping them",
                timeout,
            )
        return due
