"""The master asks the witness of each edge whose link is down whether it runs its devices."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterator
from datetime import datetime

from app.control.clock import now_utc
from app.control.supervisor import EdgeAlive
from app.master.edges import SupervisedEdges
from app.master.links import LinkTable
from app.services.secrets import EdgeSecrets
from app.services.witness import Witness, WitnessReport

log = logging.getLogger(__name__)

#: The longest wait, in ping intervals, between questions to an unanswering edge whose
#: devices the master holds.
MAX_BACKOFF = 8


class WitnessAsker:
    """Every ping interval, asks each edge whose link is down while a failover is pending
    or the master holds its devices; keeps what each said.

    An edge whose link is down but whose API proves it controls its devices holds the
    failover off until ``timeout`` after that sign of life (DESIGN §5). One the master
    holds the devices of, that runs them too, is left to stop them itself (it asks the
    master's witness every interval); one that keeps saying it runs them for two
    intervals and witness timeouts without asking is deaf to the master (a one-way
    network) and is yielded to. Each question runs in a task of its own bounded by
    ``ENGINE_WITNESS_TIMEOUT_S``, so a slow one never delays the next; a late answer to
    an older question changes nothing. An edge whose devices the master holds and
    whose witness does not answer (it is down: a power cut, a fleet-wide outage) is
    asked less and less often, down to every ``MAX_BACKOFF`` intervals, so a thousand
    dead edges never crowd out the questions that hold a failover off.
    """

    def __init__(
        self,
        witness: Witness,
        secrets: EdgeSecrets,
        edges: SupervisedEdges,
        links: LinkTable,
        *,
        interval_s: float,
        timeout_s: float,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._witness = witness
        self._secrets = secrets
        self._edges = edges
        self._links = links
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._max_in_flight = math.ceil(timeout_s / interval_s) + 1
        #: What each edge's witness last said.
        self.reports: dict[str, WitnessReport] = {}
        #: When each edge last asked the master's witness (with the right proof).
        self._asked_by: dict[str, datetime] = {}
        #: Since when each edge's witness has said, answer after answer, that it controls.
        self._claiming: dict[str, datetime] = {}
        self._asked: dict[str, int] = {}
        self._settled: dict[str, int] = {}
        self._questions: dict[str, set[asyncio.Task[None]]] = {}
        #: Intervals between questions to an unanswering edge whose devices the master holds.
        self._backoff: dict[str, int] = {}
        self._skipped: dict[str, int] = {}

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval_s)
                for edge_id, url in self._waiting():
                    self._ask_soon(edge_id, url)
        finally:
            for questions in self._questions.values():
                for question in questions:
                    question.cancel()

    def forget(self, edge_id: str) -> None:
        self.reports.pop(edge_id, None)
        self._asked_by.pop(edge_id, None)
        self._claiming.pop(edge_id, None)
        self._backoff.pop(edge_id, None)

    def edge_asked(self, edge_id: str) -> None:
        """The edge asked the master's witness: it hears what the master runs."""
        self._asked_by[edge_id] = self._clock()

    def deaf(self, edge_id: str, report: WitnessReport) -> bool:
        """Whether the edge has said it controls, for two intervals and witness timeouts,
        without asking the master's witness once (it would have stopped if it had)."""
        if not report.controls:
            self._claiming.pop(edge_id, None)
            return False
        since = self._claiming.setdefault(edge_id, report.checked_at)
        asked = self._asked_by.get(edge_id)
        if asked is not None and asked >= since:
            return False
        grace = 2 * (self._interval_s + self._timeout_s)
        return (report.checked_at - since).total_seconds() >= grace

    def _waiting(self) -> Iterator[tuple[str, str]]:
        for edge_id, supervisor in list(self._edges.supervisors.items()):
            control = supervisor.state.control
            url = self._edges.api_url(edge_id)
            if url and not control.online and control.failover_deadline is not None:
                yield edge_id, url
            elif url and not control.online and control.controller == "master":
                skipped = self._skipped.get(edge_id, 0) + 1
                if skipped >= self._backoff.get(edge_id, 1):
                    skipped = 0
                    yield edge_id, url
                self._skipped[edge_id] = skipped
            else:
                # What its witness said is history once nothing waits on it: an edge back
                # or restored is not "cannot be reached, asked a minute ago"; a later
                # claim starts afresh.
                self.forget(edge_id)

    def _ask_soon(self, edge_id: str, url: str) -> None:
        questions = self._questions.setdefault(edge_id, set())
        if len(questions) >= self._max_in_flight:
            return
        self._asked[edge_id] = asked = self._asked.get(edge_id, 0) + 1
        question = asyncio.create_task(self._ask(edge_id, url, asked), name="edge witness")
        questions.add(question)
        question.add_done_callback(questions.discard)

    async def _ask(self, edge_id: str, url: str, asked: int) -> None:
        try:
            secrets = await self._secrets.valid(edge_id)
            report = await self._witness.ask(url, edge_id, secrets, self.reports.get(edge_id))
            if asked < self._settled.get(edge_id, 0):
                return  # a newer question was answered first
            self._settled[edge_id] = asked
            self.reports[edge_id] = report
            if report.result == "unreachable":
                self._backoff[edge_id] = min(2 * self._backoff.get(edge_id, 1), MAX_BACKOFF)
            else:
                self._backoff.pop(edge_id, None)
            deaf = self.deaf(edge_id, report)
            supervisor = self._edges.get(edge_id)
            if report.controls and supervisor is not None:
                error = self._links.link_errors.get(edge_id)
                await supervisor.handle(
                    EdgeAlive(
                        report.checked_at, link_error=error.reason if error else None, deaf=deaf
                    )
                )
        except Exception:
            log.exception("asking the witness of edge %s failed", edge_id)
