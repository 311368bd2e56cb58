"""What an edge asks of the master over its link: the replica's feed (DESIGN §6)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from app.link.codec import Encoded
from app.link.ops import (
    EDGE_TO_MASTER,
    REPLICA_CHANGES,
    REPLICA_FETCH,
    Handler,
    ReplicaChangesArgs,
    op_table,
)
from app.master.admissions import AdmissionGate
from app.master.feed import SharedFeed, replica_fetch
from app.metrics import Metrics
from app.services.limits import describe_skipped
from app.settings import LINK_ENVELOPE_BYTES
from app.store.base import Store

log = logging.getLogger(__name__)


class ReplicaFeed:
    """Answers ``replica.changes`` and ``replica.fetch``; remembers what it left out."""

    def __init__(
        self, store: Store, metrics: Metrics, gate: AdmissionGate, *, max_frame: int
    ) -> None:
        self._store = store
        self._gate = gate
        self._shared = SharedFeed(store)
        self._metrics = metrics
        self._max_frame = max_frame
        #: What replication last had to leave out of each edge's replica, in words.
        self.errors: dict[str, str] = {}

    def handlers(self, edge_id: str) -> Mapping[str, Handler]:
        """The table an edge's link serves, by op."""
        return op_table(
            EDGE_TO_MASTER,
            REPLICA_CHANGES.serve(lambda args: self._changes(edge_id, args)),
            REPLICA_FETCH.serve(lambda args: replica_fetch(self._store, args)),
        )

    async def _changes(self, edge_id: str, args: ReplicaChangesArgs) -> Encoded:
        """The batch's text (a ``ReplicaBatch``), read once for every edge asking alike."""
        max_bytes = self._max_frame - LINK_ENVELOPE_BYTES
        await self._gate.quiet()
        answer = await self._shared.changes(args, max_bytes=max_bytes)
        skipped = answer.skipped
        if skipped:
            text = describe_skipped(skipped)
            log.error(
                "edge %s: %d change(s) left out of its replica, which no link frame can "
                "carry (ENGINE_LINK_MAX_FRAME %d): %s",
                edge_id,
                len(skipped),
                self._max_frame,
                text,
            )
            self._metrics.replication_skipped.inc(len(skipped))
            self.errors[edge_id] = f"not replicated: {text}"
        return answer.result()
