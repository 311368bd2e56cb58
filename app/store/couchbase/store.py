"""The Couchbase store: KV with CAS for documents, SQL++ for lookups and the change feed.

Every write is a CAS operation, so stale writers get :class:`VersionConflict`.

Change feed. The Python SDK offers no mutation stream, so the store keeps its own
sequence: every write first increments the counter document ``_engine::seq``
(``binary().increment``) and stores the new value in the document's ``_seq``.
``changes_since(seq)`` is then a query ``WHERE _seq > $since ORDER BY _seq``. Taking a
sequence and storing the document that carries it happen under one lock, and the
newest sequence is read under that lock too, so a reader is never told about a
sequence whose document is not stored yet (a promise each process keeps for its own
writes: one server process writes a bucket, its edges get it by XDCR). Tombstones are
kept, so the feed is never compacted. :meth:`CouchbaseStore.subscribe` hears this
process's writes at once; writes by other clients of the bucket can only be noticed by
polling the counter, every ``poll_interval`` seconds.

Several documents cannot be written atomically with KV operations alone, so
:meth:`CouchbaseStore.insert_many` checks every id first and, should a write fail
midway (a concurrent writer took one of the ids, or the cluster stopped answering),
deletes again the ones it wrote, the one whose write timed out included when it did
happen; a reader may see them in between.

Replication. Couchbase buckets are replicated by XDCR (see :mod:`app.store.xdcr`), not
over the control link: with this backend the link-based replica sync is off
(DESIGN §7), so the store is no :class:`~app.store.base.ReplicaStore`. A client cannot
choose a CAS, so a replica written through the SDK could not keep the master's
versions, while XDCR does. The counter document belongs to each cluster: the XDCR
filter keeps keys under ``_engine::`` local.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from app.store.base import (
    ChangeBatch,
    Document,
    DocumentExists,
    DocumentNotFound,
    FeedCompacted,
    JsonObject,
    Page,
    SequenceNotifier,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    lookup_filter,
    refuse_repeats,
    require_positive,
)
from app.store.couchbase.codec import (
    INTERNAL_KEY_PREFIX,
    SEQUENCE_KEY,
    StoredRow,
    changes_batch,
    count_of,
    encode_document,
    encode_tombstone,
)
from app.store.couchbase.config import CouchbaseConfig
from app.store.couchbase.sdk import CasMismatch, ClusterConnect, Connection, connect
from app.store.couchbase.sql import (
    FindQuery,
    changes_parameters,
    changes_statement,
    index_statements,
)

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5


def _internal(doc_id: str) -> bool:
    return doc_id.startswith(INTERNAL_KEY_PREFIX)


def _refuse_internal(doc_id: str) -> None:
    if _internal(doc_id):
        raise ValueError(f"ids starting with {INTERNAL_KEY_PREFIX!r} are the store's own")


@dataclass(slots=True)
class _Session:
    """What exists while the store is open."""

    connection: Connection
    notifier: SequenceNotifier
    published: int
    poller: asyncio.Task[None] | None = None

    def publish(self, seq: int) -> None:
        if seq > self.published:
            self.published = seq
            self.notifier.publish(seq)


class CouchbaseStore:
    """The :class:`~app.store.base.Store` on a Couchbase collection (see the module doc).

    ``cluster_connect`` replaces the SDK's ``Cluster.connect`` (a stand-in cluster).
    """

    def __init__(
        self,
        config: CouchbaseConfig,
        *,
        poll_interval: float = POLL_INTERVAL_S,
        cluster_connect: ClusterConnect | None = None,
    ) -> None:
        self.config = config
        self._poll_interval = poll_interval
        self._cluster_connect = cluster_connect
        self._session: _Session | None = None
        self._write_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str) -> CouchbaseStore:
        return cls(CouchbaseConfig.from_url(url))

    # --- lifecycle ----------------------------------------------------------------

    async def open(self) -> None:
        if self._session is not None:
            return
        connection = await connect(self.config, self._cluster_connect)
        try:
            for statement in index_statements(self.config.keyspace):
                await connection.queries.create_index(statement)
            newest = await connection.kv.counter(SEQUENCE_KEY)
        except BaseException:
            await connection.close()
            raise
        session = _Session(connection, SequenceNotifier(newest), newest)
        session.poller = asyncio.create_task(self._follow_other_writers(session))
        self._session = session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        session.notifier.close()
        if session.poller is not None:
            session.poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session.poller
        await session.connection.close()

    @property
    def _open(self) -> _Session:
        if self._session is None:
            raise StoreUnavailable("the Couchbase store is not open")
        return self._session

    # --- reads --------------------------------------------------------------------

    async def get(self, doc_id: str) -> Document:
        row = None if _internal(doc_id) else await self._open.connection.kv.get(doc_id)
        if row is None:
            raise DocumentNotFound(doc_id)
        return row.document()

    async def get_many(self, doc_ids: Sequence[str]) -> dict[str, Document]:
        kv = self._open.connection.kv
        wanted = [doc_id for doc_id in dict.fromkeys(doc_ids) if not _internal(doc_id)]
        rows = await asyncio.gather(*(kv.get(doc_id) for doc_id in wanted))
        return {row.id: row.document() for row in rows if row is not None and not row.deleted}

    async def find(
        self,
        doc_type: str,
        *,
        where: Mapping[str, str] | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> Page:
        where = lookup_filter(doc_type, where, limit)
        query = FindQuery(self.config.keyspace, doc_type, where, after, limit)
        queries = self._open.connection.queries
        counted, found = await asyncio.gather(
            queries.rows(query.count_statement(), query.count_parameters()),
            queries.rows(query.page_statement(), query.page_parameters()),
        )
        rows = [StoredRow.from_query(row) for row in found]
        items = [row.document() for row in rows[:limit]]
        more = limit is not None and len(rows) > limit
        return Page(items=items, total=count_of(counted), next_after=items[-1].id if more else None)

    async def changes_since(self, seq: int, *, limit: int = 500, horizon: int = 0) -> ChangeBatch:
        """Tombstones are never purged here, so ``horizon`` is always 0."""
        require_positive("limit", limit)
        newest = await self.last_seq()
        if seq > newest:
            raise FeedCompacted(seq, 0)
        found = await self._open.connection.queries.rows(
            changes_statement(self.config.keyspace), changes_parameters(seq, limit)
        )
        rows = [StoredRow.from_query(row) for row in found]
        return changes_batch(rows, limit=limit, newest=newest)

    async def last_seq(self) -> int:
        return await self._newest(self._open)

    async def _newest(self, session: _Session) -> int:
        async with self._write_lock:  # never a sequence whose document is still in flight
            return await session.connection.kv.counter(SEQUENCE_KEY)

    def subscribe(self) -> AsyncIterator[int]:
        return self._open.notifier.watch()

    async def _follow_other_writers(self, session: _Session) -> None:
        """Poll the counter: the only way to notice writes by other clients of the bucket."""
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                session.publish(await self._newest(session))
            except StoreError as exc:  # the next operation reports the outage to its caller
                log.debug("polling the change counter: %s", exc)

    # --- writes -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _sequenced(self, count: int = 1) -> AsyncIterator[list[int]]:
        """Take ``count`` new sequences and hold them until the writes using them are stored."""
        session = self._open
        async with self._write_lock:
            last = await session.connection.kv.increment(SEQUENCE_KEY, count)
            yield list(range(last - count + 1, last + 1))
            session.publish(last)

    async def _live(self, doc_id: str, expected_version: str | None) -> StoredRow:
        row = None if _internal(doc_id) else await self._open.connection.kv.get(doc_id)
        if row is None or row.deleted:
            raise DocumentNotFound(doc_id)
        if expected_version is not None and expected_version != row.version:
            raise VersionConflict(doc_id, expected_version, row.version)
        return row

    async def insert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        [doc] = await self.insert_many([(doc_id, doc_type, body)])
        return doc

    async def insert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        if not docs:
            return []
        for doc_id, _, _ in docs:
            _refuse_internal(doc_id)
        refuse_repeats([doc_id for doc_id, _, _ in docs])
        existing = await self.get_many([doc_id for doc_id, _, _ in docs])
        if existing:
            raise DocumentExists(next(iter(existing)))
        written: list[StoredRow] = []
        attempted: list[tuple[str, str, int]] = []
        async with self._sequenced(len(docs)) as seqs:
            try:
                for (doc_id, doc_type, body), seq in zip(docs, seqs, strict=True):
                    attempted.append((doc_id, doc_type, seq))
                    stored = encode_document(doc_type, body, seq)
                    written.append(StoredRow(doc_id, await self._create(doc_id, stored), stored))
            except Exception:
                await self._withdraw(attempted)
                raise
        return [row.document() for row in written]

    async def _create(self, doc_id: str, stored: JsonObject) -> int:
        """Store a new document, over its tombstone if it had one; return its CAS."""
        kv = self._open.connection.kv
        try:
            return await kv.insert(doc_id, stored)
        except DocumentExists:
            tombstone = await kv.get(doc_id)
            if tombstone is None or not tombstone.deleted:
                raise
        try:
            return await kv.replace(doc_id, stored, cas=tombstone.cas)
        except CasMismatch:
            raise DocumentExists(doc_id) from None

    async def _withdraw(self, attempted: Sequence[tuple[str, str, int]]) -> None:
        """Delete what a failed ``insert_many`` wrote, unless someone changed it since.

        A write that failed with a timeout may still have happened, so each id is read
        back: a document still carrying the sequence this batch gave it is ours.
        """
        session = self._open
        kv = session.connection.kv
        try:
            for doc_id, doc_type, seq in attempted:
                row = await kv.get(doc_id)
                if row is None or row.deleted or row.seq != seq:
                    continue
                withdrawn = await kv.increment(SEQUENCE_KEY, 1)
                with contextlib.suppress(CasMismatch):
                    await kv.replace(doc_id, encode_tombstone(doc_type, withdrawn), cas=row.cas)
                session.publish(withdrawn)
        except StoreError as exc:  # the caller hears of the first failure, not of this one
            log.warning(
                "could not withdraw a partial insert of %d documents: %s", len(attempted), exc
            )

    async def replace(
        self, doc_id: str, body: JsonObject, *, expected_version: str | None = None
    ) -> Document:
        while True:
            current = await self._live(doc_id, expected_version)
            async with self._sequenced() as [seq]:
                stored = encode_document(current.type, body, seq)
                try:
                    cas = await self._open.connection.kv.replace(doc_id, stored, cas=current.cas)
                except CasMismatch:
                    continue  # read again: a conflict or a deletion is reported from there
            return StoredRow(doc_id, cas, stored).document()

    async def upsert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        _refuse_internal(doc_id)
        async with self._sequenced() as [seq]:
            stored = encode_document(doc_type, body, seq)
            cas = await self._open.connection.kv.upsert(doc_id, stored)
        return StoredRow(doc_id, cas, stored).document()

    async def upsert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        """One by one: Couchbase has no transaction across documents here."""
        refuse_repeats([doc_id for doc_id, _, _ in docs])
        return [await self.upsert(doc_id, doc_type, body) for doc_id, doc_type, body in docs]

    async def delete(self, doc_id: str, *, expected_version: str | None = None) -> None:
        while True:
            current = await self._live(doc_id, expected_version)
            async with self._sequenced() as [seq]:
                tombstone = encode_tombstone(current.type, seq)
                try:
                    await self._open.connection.kv.replace(doc_id, tombstone, cas=current.cas)
                except CasMismatch:
                    continue
            return
