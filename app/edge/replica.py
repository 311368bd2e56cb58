"""The edge's copy of the master's database, kept current over the control link.

On connect the edge asks for every change since the last master sequence it applied,
in bounded batches; afterwards each ``replica.changed`` notice makes it ask again.
Each batch is applied in one transaction together with its sequence, so a crash
mid-catch-up never loses or double-applies a change. When the master's feed no longer
reaches back that far, the replica starts over from nothing.
"""

from __future__ import annotations

import asyncio
import logging

from app.link import LinkConnection, LinkRequestError
from app.store.base import Change, Store

log = logging.getLogger(__name__)

BATCH = 1000


class Replicator:
    """Pulls the master's changes into the local store."""

    def __init__(self, store: Store, *, batch: int = BATCH) -> None:
        self._store = store
        self._batch = batch
        self._lock = asyncio.Lock()
        self.seq = 0
        self.synced = False

    async def open(self) -> None:
        self.seq = await self._store.replica_seq()
        self.synced = self.seq > 0

    async def catch_up(self, link: LinkConnection) -> int:
        """Apply every change the master has; returns how many were applied."""
        applied = 0
        async with self._lock:
            while True:
                try:
                    result = await link.request(
                        "replica.changes", {"since": self.seq, "limit": self._batch}
                    )
                except LinkRequestError as exc:
                    if exc.code != "ResyncRequired":
                        raise
                    log.warning("the master's feed was compacted: full resync (%s)", exc)
                    await self._store.reset_replica()
                    self.seq = 0
                    continue
                changes = [Change.from_json(item) for item in result["changes"]]
                last_seq = int(result["last_seq"])
                if changes or last_seq != self.seq:
                    await self._store.apply_changes(changes, source_seq=last_seq)
                    self.seq = last_seq
                    applied += len(changes)
                if not result["more"]:
                    break
            self.synced = True
        return applied
