"""Every committed configuration write: tell the edges, reconcile modules and supervisors.

Writes come in bursts (a master restart admits a thousand edges, each with a control
state and a control event); the store's notifier hands the watcher only the newest
sequence, and the watcher reads which types changed meanwhile (the feed's text, bodies
unread) so that control bookkeeping does not make it read every edge's document and
the whole topology again (bench/README.md §6).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from app.link.ops import MODEL_UPDATED
from app.master.edges import SupervisedEdges
from app.master.feed import changed_types, versions_since
from app.master.links import LinkTable
from app.master.witnesses import WitnessAsker
from app.metrics import Metrics
from app.services.catalog import EDGE
from app.services.modules import TOPOLOGY_TYPES, ModuleService
from app.store.base import Store

log = logging.getLogger(__name__)


class ConfigurationWatcher:
    """Follows the store's changes and brings the edges, modules and supervisors in line."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        modules: ModuleService,
        edges: SupervisedEdges,
        links: LinkTable,
        witnesses: WitnessAsker,
        *,
        replicated_by_link: bool,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._modules = modules
        self._edges = edges
        self._links = links
        self._witnesses = witnesses
        #: The embedded store replicates over the links; Couchbase through XDCR.
        self._replicated_by_link = replicated_by_link
        self._background: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        announced = handled = await self._store.last_seq()
        # Everything at the start and after a failure: what changed before is unknown.
        everything = True
        async for seq in self._store.subscribe():
            self._metrics.store_seq.set(seq)
            if self._replicated_by_link:
                await self._links.broadcast("replica.changed", seq=seq)
            elif seq > announced:
                versions, announced = await versions_since(self._store, announced)
                if versions:
                    self._broadcast_updated(versions)
            try:
                kinds = None if everything else await changed_types(self._store, handled)
                if kinds is None or EDGE.name in kinds:
                    await self._sync_edges()
                if kinds is None or kinds & TOPOLOGY_TYPES:
                    await self._modules.reconcile()
                everything, handled = False, seq
            except Exception:
                everything = True
                log.exception("applying configuration changes failed")

    def _broadcast_updated(self, versions: dict[str, str | None]) -> None:
        """Tell every connected edge, without waiting: the watcher must keep going."""
        for edge_id in self._links.connected():
            link = self._links.get(edge_id)
            if link is not None:
                sent = MODEL_UPDATED.call(link, {"versions": versions})
                task = asyncio.create_task(_quietly(sent, edge_id, MODEL_UPDATED.name))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _sync_edges(self) -> None:
        for edge_id in await self._edges.sync((await self._store.find("edge")).items):
            self._witnesses.forget(edge_id)


async def _quietly(request: Awaitable[object], edge_id: str, op: str) -> None:
    try:
        await request
    except Exception as exc:
        log.info("edge %s did not take %s: %s", edge_id, op, exc)
