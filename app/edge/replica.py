"""The edge's copy of the master's database, so the edge boots and runs without it.

With the embedded store the copy travels over the control link (:class:`Replicator`):
on connect the edge asks for every change since the last master sequence it applied,
in bounded batches, and each ``replica.changed`` event makes it ask again. Each batch
is applied in one transaction together with its sequence, so a crash mid-catch-up
never loses or double-applies a change. When the master's feed no longer reaches back
that far, the edge gathers the master's whole state before it replaces its copy.

With Couchbase, XDCR copies the bucket and the link-based sync is off
(:class:`XdcrReplicator`): ``model.updated`` names the versions the master wrote, and
the edge waits a bounded time for XDCR to deliver them, then fetches the late ones
over the link.

Edge secrets never reach an edge: the master's feed leaves them out, and the edge
drops any master-only document it is sent all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from app.link import ErrorCode, LinkRequestError
from app.link.ops import REPLICA_CHANGES, REPLICA_FETCH, Requester
from app.services.limits import describe_skipped
from app.store.base import (
    MASTER_ONLY_TYPES,
    Change,
    ChangeBatch,
    DocumentNotFound,
    ReplicaStore,
    SetAside,
    Store,
    document_body,
)

log = logging.getLogger(__name__)

#: Changes asked for per ``replica.changes`` request.
BATCH = 1000
#: How long one batch of the feed may take to arrive. Longer than a command's deadline:
#: when many edges catch up at once, a batch waits behind the others' at the master, and
#: a batch given up is read again from the start (bench/README.md §6).
CATCH_UP_TIMEOUT_S = 120.0
#: How long an edge on Couchbase waits for XDCR before fetching over the link.
XDCR_WAIT_S = 3.0
XDCR_POLL_S = 0.1


class Replica(Protocol):
    """What the edge role asks of its copy of the master's database."""

    @property
    def seq(self) -> int:
        """The master sequence the copy is complete up to (0: never synced)."""
        ...

    @property
    def set_aside(self) -> SetAside | None:
        """The corrupt copy moved aside when the store opened (this one is rebuilt)."""
        ...

    async def open(self) -> None:
        """Read where the copy stands; call once the store is open."""

    async def catch_up(self, link: Requester) -> int:
        """Bring the copy up to the master's newest change; returns the changes received."""

    async def updated(self, link: Requester, versions: Mapping[str, str | None]) -> list[str]:
        """``model.updated``: return once the copy holds ``versions`` (None: deleted).

        Returns the ids that had to be fetched over the link.
        """


def replica_for(
    store: Store,
    *,
    on_progress: Callable[[int], None] | None = None,
    on_skipped: Callable[[Sequence[Mapping[str, Any]]], None] | None = None,
) -> Replica:
    """A store that can hold a link-fed replica is copied over the link; any other
    (Couchbase) is replicated by XDCR.

    ``on_progress`` hears the master sequence applied after each batch (metrics);
    ``on_skipped`` the changes the master could not ship.
    """
    if isinstance(store, ReplicaStore):
        return Replicator(store, on_progress=on_progress, on_skipped=on_skipped)
    return XdcrReplicator(store)


def _resync_required(exc: LinkRequestError) -> bool:
    return exc.code == ErrorCode.RESYNC_REQUIRED


async def fetch_changes(link: Requester, since: int, limit: int, horizon: int = 0) -> ChangeBatch:
    """One batch of the master's feed after ``since``, master-only documents dropped."""
    result = await REPLICA_CHANGES.call(
        link,
        {"since": since, "limit": limit, "horizon": horizon},
        timeout=CATCH_UP_TIMEOUT_S,
    )
    changes = [Change.from_json(item) for item in result["changes"]]
    return ChangeBatch(
        changes=[change for change in changes if change.type not in MASTER_ONLY_TYPES],
        last_seq=int(result["last_seq"]),
        more=bool(result["more"]),
        horizon=int(result.get("horizon", 0)),
        skipped=[dict(item) for item in result.get("skipped", [])],
    )


class Replicator:
    """Pulls the master's change feed over the link into the embedded store."""

    def __init__(
        self,
        store: ReplicaStore,
        *,
        batch: int = BATCH,
        on_progress: Callable[[int], None] | None = None,
        on_skipped: Callable[[Sequence[Mapping[str, Any]]], None] | None = None,
    ) -> None:
        self._store = store
        self._batch = batch
        self._lock = asyncio.Lock()
        self.seq = 0
        self._on_progress = on_progress
        self._on_skipped = on_skipped

    @property
    def set_aside(self) -> SetAside | None:
        return self._store.set_aside

    async def open(self) -> None:
        self._advance(await self._store.replica_seq())

    async def catch_up(self, link: Requester) -> int:
        """Apply every change the master has; returns how many changes it received.

        Calls run one at a time, each until the master reports nothing more.
        """
        async with self._lock:
            try:
                return await self._follow_feed(link)
            except LinkRequestError as exc:
                if not _resync_required(exc):
                    raise
            log.warning(
                "the master's change feed no longer reaches back to sequence %d: full resync",
                self.seq,
            )
            return await self._resync(link)

    async def updated(self, link: Requester, versions: Mapping[str, str | None]) -> list[str]:
        """The feed carries every version the master announces: catching up is enough."""
        await self.catch_up(link)
        return []

    async def _follow_feed(self, link: Requester) -> int:
        """Apply batch after batch, asking for the next one while writing this one.

        The master reads its feed while the edge writes (bench/README.md, "Replica
        catch-up"); each batch is still applied in order, in one transaction with its
        sequence.
        """
        received = 0
        batch = await fetch_changes(link, self.seq, self._batch)
        while True:
            self._report(batch)
            following = (
                asyncio.ensure_future(fetch_changes(link, batch.last_seq, self._batch))
                if batch.more
                else None
            )
            try:
                if batch.changes or batch.last_seq != self.seq:
                    await self._store.apply_changes(batch.changes, source_seq=batch.last_seq)
                    self._advance(batch.last_seq)
            except BaseException:
                if following is not None:
                    following.cancel()
                    await asyncio.gather(following, return_exceptions=True)
                raise
            received += len(batch.changes)
            if following is None:
                return received
            batch = await following

    def _report(self, batch: ChangeBatch) -> None:
        """Changes the master could not ship: say so, and carry on with the rest."""
        if not batch.skipped:
            return
        log.error(
            "the master left %d change(s) out of this replica, which no link frame can carry: %s",
            len(batch.skipped),
            describe_skipped(batch.skipped),
        )
        if self._on_skipped is not None:
            self._on_skipped(batch.skipped)

    def _advance(self, seq: int) -> None:
        self.seq = seq
        if self._on_progress is not None:
            self._on_progress(seq)

    async def _resync(self, link: Requester) -> int:
        """Replace the copy with the master's whole state, gathered first.

        Until the master's state is complete, the old copy keeps serving reads and
        running the location; the swap is then two back-to-back transactions.
        """
        state, last_seq = await self._gather(link)
        await self._store.reset_replica()
        await self._store.apply_changes(state, source_seq=last_seq)
        self._advance(last_seq)
        log.info("full resync done: %d changes up to sequence %d", len(state), last_seq)
        return len(state)

    async def _gather(self, link: Requester) -> tuple[list[Change], int]:
        """The master's whole feed and the sequence it is complete up to.

        A feed compacted again meanwhile fails the resync; the next catch-up retries it.
        """
        state: list[Change] = []
        since, more, horizon = 0, True, 0
        while more:
            batch = await fetch_changes(link, since, self._batch, horizon)
            self._report(batch)
            if since == 0:
                horizon = batch.horizon  # compactions before we started are no gap
            state.extend(batch.changes)
            since, more = batch.last_seq, batch.more
        return state, since


class XdcrReplicator:
    """An edge on Couchbase: XDCR fills its bucket, the link only covers XDCR's delays.

    A document fetched over the link is written with this cluster's CAS, so its
    version differs from the master's until XDCR delivers the next write of it.
    Writes by XDCR do not move this cluster's change counter, so nothing here is
    woken by the store: ``model.updated`` is what tells the edge to look.
    """

    def __init__(
        self, store: Store, *, wait_s: float = XDCR_WAIT_S, poll_s: float = XDCR_POLL_S
    ) -> None:
        self._store = store
        self._wait_s = wait_s
        self._poll_s = poll_s

    @property
    def seq(self) -> int:
        """Always 0: XDCR keeps no master sequence on the edge."""
        return 0

    @property
    def set_aside(self) -> SetAside | None:
        """Never: Couchbase keeps its own data whole."""
        return None

    async def open(self) -> None:
        """Nothing to read: the bucket is complete as far as XDCR got."""

    async def catch_up(self, link: Requester) -> int:
        """Nothing to pull: XDCR delivers the master's changes."""
        return 0

    async def updated(self, link: Requester, versions: Mapping[str, str | None]) -> list[str]:
        """Wait up to ``wait_s`` for XDCR to deliver ``versions``, then fetch the late ones."""
        late = await self._await_delivery(versions)
        if late:
            log.warning(
                "XDCR has not delivered %d document(s) after %.1fs; fetching them over the link",
                len(late),
                self._wait_s,
            )
            await self._fetch(link, late)
        return late

    async def _await_delivery(self, versions: Mapping[str, str | None]) -> list[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        late = await self._late(versions)
        while late and loop.time() < deadline:
            await asyncio.sleep(self._poll_s)
            late = await self._late(versions)
        return late

    async def _late(self, versions: Mapping[str, str | None]) -> list[str]:
        held = await self._store.get_many(list(versions))
        return [
            doc_id
            for doc_id, version in versions.items()
            if (held[doc_id].version if doc_id in held else None) != version
        ]

    async def _fetch(self, link: Requester, doc_ids: Sequence[str]) -> None:
        """Write what the master holds now; what it no longer holds is deleted."""
        result = await REPLICA_FETCH.call(link, {"ids": list(doc_ids)})
        found = {
            doc["id"]: doc for doc in result["documents"] if doc["type"] not in MASTER_ONLY_TYPES
        }
        for doc_id in doc_ids:
            doc = found.get(doc_id)
            if doc is not None:
                await self._store.upsert(doc_id, doc["type"], document_body(doc))
                continue
            with contextlib.suppress(DocumentNotFound):
                await self._store.delete(doc_id)
