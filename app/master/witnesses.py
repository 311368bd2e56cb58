"""The master asks the witness of each edge awaiting a failover whether it runs its devices."""

from __future__ import annotations

import asyncio
import logging

from app.control.supervisor import EdgeAlive
from app.master.edges import SupervisedEdges
from app.master.links import LinkTable
from app.services.secrets import EdgeSecrets
from app.services.witness import Witness, WitnessReport

log = logging.getLogger(__name__)


class WitnessAsker:
    """Every ping interval, asks each edge whose failover is pending; keeps what each said.

    An edge whose link is down but whose API proves it controls its devices holds the
    failover off until ``timeout`` after that sign of life (DESIGN §5).
    """

    def __init__(
        self,
        witness: Witness,
        secrets: EdgeSecrets,
        edges: SupervisedEdges,
        links: LinkTable,
        *,
        interval_s: float,
    ) -> None:
        self._witness = witness
        self._secrets = secrets
        self._edges = edges
        self._links = links
        self._interval_s = interval_s
        #: What each edge's witness last said.
        self.reports: dict[str, WitnessReport] = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            waiting = [
                (edge_id, url)
                for edge_id, supervisor in list(self._edges.supervisors.items())
                if (url := self._edges.api_url(edge_id))
                and supervisor.state.control.failover_deadline is not None
            ]
            # What a witness said is history once no failover waits on it: an edge back,
            # restored or taken over is not "cannot be reached, asked a minute ago".
            for edge_id in self.reports.keys() - {edge_id for edge_id, _ in waiting}:
                self.forget(edge_id)
            if waiting:
                await asyncio.gather(*(self._ask(e, u) for e, u in waiting))

    def forget(self, edge_id: str) -> None:
        self.reports.pop(edge_id, None)

    async def _ask(self, edge_id: str, url: str) -> None:
        try:
            secrets = await self._secrets.valid(edge_id)
            report = await self._witness.ask(url, edge_id, secrets, self.reports.get(edge_id))
            self.reports[edge_id] = report
            supervisor = self._edges.get(edge_id)
            if report.controls and supervisor is not None:
                error = self._links.link_errors.get(edge_id)
                await supervisor.handle(
                    EdgeAlive(report.checked_at, link_error=error.reason if error else None)
                )
        except Exception:
            log.exception("asking the witness of edge %s failed", edge_id)
