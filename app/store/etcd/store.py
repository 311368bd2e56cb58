"""The etcd store: one key per document, versions from etcd revisions, the feed from watch.

Keys, under the URL's prefix ``P``:

- ``P/doc/<id>``: a document, ``{"type", "place", "body"}`` as JSON. Its version (the
  ETag) is the key's ``mod_revision``; ``If-Match`` and every compare-and-set are a
  transaction comparing it.
- ``P/seq``: the feed marker, rewritten by every write transaction, so its
  ``mod_revision`` is the newest change of the store (:meth:`EtcdStore.last_seq`) and
  a reader can tell whether the mirror below has seen every write.
- ``P/mark/<time>``: the revision at a time (tombstone retention, below).
- ``P/cluster/…``: the masters' leader election (``app.cluster``), never a document.

Reads. :meth:`EtcdStore.get` reads the key itself. Lookups by type and field, ``get_many``
and the change feed are served by a :class:`~app.store.etcd.mirror.Mirror`: every
document in memory with its indexed fields, loaded by one range read at open and kept
current by a watch on the prefix from the revision after it. Before answering, a
read fetches the marker (one small linearizable read) and waits until the mirror has
applied that revision, so it sees every write committed before it began, by any
process. A mirror that does not catch up in time has its watch started again.

The change feed. A change's sequence is its revision shifted left 16 bits plus its
place in its transaction (``app.store.etcd.mirror``). The mirror keeps the deletions
it saw; a reader behind the mirror's floor (it was loaded after the reader's last
read) gets the deletions in between from etcd's history, replayed by a watch from
the reader's revision. Once etcd has compacted that history, the reader is told
:class:`FeedCompacted` and resynchronises in full, as after a tombstone purge on
SQLite; the store logs it. Master-only documents (edge secrets) never enter the feed.

Tombstone retention. etcd's compaction is the purge: the housekeeping pass marks the
revision with the time (:meth:`EtcdStore.mark_sequence`) and compacts the history
older than ``ENGINE_TOMBSTONE_RETENTION_S`` (:meth:`EtcdStore.purge_deleted_before`),
which also drops those deletions from the mirror. An etcd cluster that compacts on
its own (``--auto-compaction-retention``) shortens that window.

Fencing. Constructed with a :class:`Fence` (the leader's, ``app.cluster``), every write
also compares the leader key; a write the fence refused raises :class:`FenceLost`
and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Protocol

from app.store.base import (
    Change,
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
    document_body,
    lookup_filter,
    refuse_repeats,
    require_positive,
)
from app.store.etcd.client import (
    EtcdClient,
    EtcdCompacted,
    EtcdError,
    EtcdUnavailable,
    KeyValue,
    TxnResult,
    WatchResponse,
    compare_create_revision,
    compare_mod_revision,
    delete_op,
    prefix_end,
    put_op,
    range_op,
)
from app.store.etcd.config import EtcdConfig
from app.store.etcd.mirror import (
    Mirror,
    decode_document,
    decode_type,
    encode_value,
    revision_of,
    sequence,
    tombstone,
)

log = logging.getLogger(__name__)

#: Documents per transaction of an ``upsert_many`` (etcd's ``--max-txn-ops`` is 128
#: by default; each document is one operation, the marker one more).
TXN_DOCUMENTS = 100
#: Bytes of documents per transaction of an ``upsert_many``, below etcd's default
#: request limit (``--max-request-bytes``, 1.5 MiB).
TXN_BYTES = 1024 * 1024
RETRY_S = (0.05, 0.1, 0.2, 0.5, 1.0)


class FenceLost(StoreError):
    """A fenced write was refused: this process no longer holds the leadership."""


class Fence(Protocol):
    """What makes a write conditional on this process still leading.

    ``compares`` are added to every write transaction (raising :class:`FenceLost`
    when there is no leadership to compare with); after a refused transaction,
    ``holds`` tells from the fence key as it now is whether the fence was the cause.
    """

    @property
    def key(self) -> str: ...

    def compares(self) -> Sequence[JsonObject]: ...

    def holds(self, kv: KeyValue | None) -> bool: ...


class EtcdStore:
    """The :class:`~app.store.base.Store` on an etcd cluster (see the module doc)."""

    def __init__(
        self,
        config: EtcdConfig,
        *,
        fence: Fence | None = None,
        sync_timeout_s: float | None = None,
    ) -> None:
        self.config = config
        self._fence = fence
        self._sync_timeout_s = sync_timeout_s or config.timeout_s
        self._docs = f"{config.prefix}/doc/"
        self._marker = f"{config.prefix}/seq"
        self._marks = f"{config.prefix}/mark/"
        self._client: EtcdClient | None = None
        self._mirror: Mirror | None = None
        self._notifier: SequenceNotifier | None = None
        self._follower: asyncio.Task[None] | None = None
        self._applied = asyncio.Condition()
        #: The revision the mirror's watch has applied up to (any key of the prefix).
        self._watched_revision = 0
        self._published = 0

    @classmethod
    def from_url(cls, url: str) -> EtcdStore:
        return cls(EtcdConfig.from_url(url))

    # --- lifecycle --------------------------------------------------------------------

    async def open(self) -> None:
        if self._client is not None:
            return
        client = EtcdClient(self.config)
        self._client = client
        try:
            await self._load()
        except BaseException:
            self._client = None
            await client.close()
            raise
        mirror = self._require_mirror()
        self._published = mirror.last_seq
        self._notifier = SequenceNotifier(mirror.last_seq)
        self._follower = asyncio.create_task(self._follow(), name="etcd-store-watch")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if self._notifier is not None:
            self._notifier.close()
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        self._mirror = None
        await client.close()

    # --- reads ------------------------------------------------------------------------

    async def get(self, doc_id: str) -> Document:
        kv = await self._read_key(self._key(doc_id))
        if kv is None:
            raise DocumentNotFound(doc_id)
        return decode_document(doc_id, kv)

    async def get_many(self, doc_ids: Sequence[str]) -> dict[str, Document]:
        if not doc_ids:
            return {}
        return (await self._synced()).get_many(doc_ids)

    async def find(
        self,
        doc_type: str,
        *,
        where: Mapping[str, str] | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> Page:
        where = lookup_filter(doc_type, where, limit)
        return (await self._synced()).find(doc_type, where, after, limit)

    async def changes_since(self, seq: int, *, limit: int = 500, horizon: int = 0) -> ChangeBatch:
        """The feed after ``seq`` (see the module doc). The batch's ``horizon`` for a
        reader starting out is the newest sequence it was read at: deletions up to
        there are no gap for a reader that held nothing before."""
        require_positive("limit", limit)
        mirror = await self._synced()
        last_seq = mirror.last_seq
        if seq > last_seq:
            raise FeedCompacted(seq, mirror.floor)
        known_from = max(seq, horizon)
        backfill: list[Change] = []
        if seq > 0 and known_from < mirror.floor:
            backfill = await self._deletions_from_history(seq, known_from, mirror)
        feed = mirror.changes(seq, limit, backfill)
        return ChangeBatch(
            changes=feed.changes,
            last_seq=feed.last_seq,
            more=feed.more,
            horizon=last_seq if seq == 0 else horizon,
        )

    async def last_seq(self) -> int:
        marker = await self._read_key(self._marker)
        return sequence(marker.mod_revision) if marker is not None else 0

    def subscribe(self) -> AsyncIterator[int]:
        if self._notifier is None:
            raise StoreUnavailable("the etcd store is not open")
        return self._notifier.watch()

    # --- writes -----------------------------------------------------------------------

    async def insert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        [doc] = await self.insert_many([(doc_id, doc_type, body)])
        return doc

    async def insert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        """One transaction: every id absent, or nothing written. At most
        :data:`TXN_DOCUMENTS` documents (etcd bounds a transaction's operations)."""
        if not docs:
            return []
        refuse_repeats([doc_id for doc_id, _, _ in docs])
        if len(docs) > TXN_DOCUMENTS:
            raise StoreError(
                f"the etcd store inserts at most {TXN_DOCUMENTS} documents at once, "
                f"not {len(docs)} (etcd's --max-txn-ops)"
            )
        keys = [self._key(doc_id) for doc_id, _, _ in docs]
        values = [
            encode_value(doc_type, place, document_body(body))
            for place, (_, doc_type, body) in enumerate(docs)
        ]
        while True:
            result = await self._write(
                [compare_create_revision(key, 0) for key in keys],
                [put_op(key, value) for key, value in zip(keys, values, strict=True)],
                [range_op(key, keys_only=True) for key in keys],
            )
            if result.succeeded:
                return [
                    decode_document(doc_id, _written(key, value, result.revision))
                    for (doc_id, _, _), key, value in zip(docs, keys, values, strict=True)
                ]
            for (doc_id, _, _), found in zip(docs, result.ranges, strict=True):
                if found.kvs:
                    raise DocumentExists(doc_id)
            # the one that existed was deleted meanwhile: try again

    async def replace(
        self, doc_id: str, body: JsonObject, *, expected_version: str | None = None
    ) -> Document:
        key = self._key(doc_id)
        while True:
            current = await self._live(doc_id, expected_version)
            value = encode_value(decode_type(current), 0, document_body(body))
            result = await self._write(
                [compare_mod_revision(key, current.mod_revision)], [put_op(key, value)]
            )
            if result.succeeded:
                return decode_document(doc_id, _written(key, value, result.revision))
            # moved on meanwhile: a conflict or a deletion is reported from the read

    async def upsert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        [doc] = await self.upsert_many([(doc_id, doc_type, body)])
        return doc

    async def upsert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        """In transactions of at most :data:`TXN_DOCUMENTS` documents and
        :data:`TXN_BYTES` bytes: each all or nothing, the batch in order."""
        refuse_repeats([doc_id for doc_id, _, _ in docs])
        written: list[Document] = []
        for chunk in _chunks(docs):
            keys = [self._key(doc_id) for doc_id, _, _ in chunk]
            values = [
                encode_value(doc_type, place, document_body(body))
                for place, (_, doc_type, body) in enumerate(chunk)
            ]
            result = await self._write(
                [], [put_op(key, value) for key, value in zip(keys, values, strict=True)]
            )
            written += [
                decode_document(doc_id, _written(key, value, result.revision))
                for (doc_id, _, _), key, value in zip(chunk, keys, values, strict=True)
            ]
        return written

    async def delete(self, doc_id: str, *, expected_version: str | None = None) -> None:
        key = self._key(doc_id)
        while True:
            current = await self._live(doc_id, expected_version)
            result = await self._write(
                [compare_mod_revision(key, current.mod_revision)], [delete_op(key)]
            )
            if result.succeeded:
                return

    # --- tombstone retention (housekeeping) -------------------------------------------

    async def mark_sequence(self, at: float) -> int:
        """Record the newest revision at ``at``; returns it as a sequence."""
        client = self._require_client()
        marker = await self._read_key(self._marker)
        revision = marker.mod_revision if marker is not None else 0
        with _mapped_errors():
            await client.txn([], [put_op(self._mark_key(at), str(revision).encode())])
        return sequence(revision)

    async def purge_deleted_before(self, before: float) -> int:
        """Compact etcd's history up to the newest mark at or before ``before``; returns
        how many deletions the mirror forgot with it."""
        client = self._require_client()
        with _mapped_errors():
            marks = await client.range(self._marks, self._mark_key(before) + "\0")
        if not marks.kvs:
            return 0
        newest = marks.kvs[-1]
        revision = int(newest.value or b"0")
        with _mapped_errors():
            if revision > 0:
                # compacted further already: by another master, or by etcd itself
                with contextlib.suppress(EtcdCompacted):
                    await client.compact(revision)
            for old in marks.kvs[:-1]:
                await client.txn([], [delete_op(old.key)])
        dropped = self._require_mirror().forget_deletions_through(sequence(revision))
        log.info("etcd history compacted up to revision %d: readers behind it resync", revision)
        return dropped

    # --- plumbing: writes -------------------------------------------------------------

    async def _write(
        self,
        compares: Sequence[JsonObject],
        operations: Sequence[JsonObject],
        failure: Sequence[JsonObject] = (),
    ) -> TxnResult:
        """One transaction: ``operations`` and the marker if ``compares`` (and the fence)
        hold, else ``failure`` (their ranges come back without the fence's)."""
        client = self._require_client()
        fence = self._fence
        fenced: list[JsonObject] = []
        checks: list[JsonObject] = list(failure)
        if fence is not None:
            fenced = list(fence.compares())
            checks.insert(0, range_op(fence.key))
        with _mapped_errors():
            result = await client.txn(
                [*compares, *fenced], [*operations, put_op(self._marker, b"")], checks
            )
        if result.succeeded:
            self._publish(sequence(result.revision))
            return result
        if fence is not None:
            found = result.ranges[0].kvs
            if not fence.holds(found[0] if found else None):
                raise FenceLost("the write was refused: this master no longer leads")
            return TxnResult(False, result.revision, result.ranges[1:])
        return result

    async def _live(self, doc_id: str, expected_version: str | None) -> KeyValue:
        kv = await self._read_key(self._key(doc_id))
        if kv is None:
            raise DocumentNotFound(doc_id)
        if expected_version is not None and expected_version != str(kv.mod_revision):
            raise VersionConflict(doc_id, expected_version, str(kv.mod_revision))
        return kv

    async def _read_key(self, key: str) -> KeyValue | None:
        client = self._require_client()
        with _mapped_errors():
            found = await client.range(key)
        return found.kvs[0] if found.kvs else None

    # --- plumbing: the mirror ---------------------------------------------------------

    async def _load(self) -> None:
        """Load the mirror from one range read of the prefix."""
        client = self._require_client()
        with _mapped_errors():
            found = await client.range(self._docs, prefix_end(self._docs))
            marker = await client.range(self._marker, revision=found.revision)
        marker_revision = marker.kvs[0].mod_revision if marker.kvs else 0
        mirror = Mirror(marker_revision)
        mirror.load([decode_document(kv.key[len(self._docs) :], kv) for kv in found.kvs])
        self._mirror = mirror
        self._watched_revision = found.revision

    async def _synced(self) -> Mirror:
        """The mirror once it holds every write committed before this call."""
        marker = await self._read_key(self._marker)
        wanted = marker.mod_revision if marker is not None else 0
        mirror = self._require_mirror()
        if mirror.marker_revision >= wanted:
            return mirror
        async with self._applied:
            try:
                async with asyncio.timeout(self._sync_timeout_s):
                    await self._applied.wait_for(
                        lambda: self._require_mirror().marker_revision >= wanted
                    )
            except TimeoutError:
                self._restart_watch()
                raise StoreUnavailable(
                    f"etcd: the store's watch has not reached revision {wanted} in "
                    f"{self._sync_timeout_s:g} s; it is started again"
                ) from None
        return self._require_mirror()

    def _restart_watch(self) -> None:
        if self._follower is not None and self._client is not None:
            self._follower.cancel()
            self._follower = asyncio.create_task(self._follow(), name="etcd-store-watch")

    async def _follow(self) -> None:
        """Apply the prefix's watch to the mirror, reconnecting until the store closes."""
        client = self._require_client()
        failures = 0
        while True:
            try:
                async for response in client.watch(
                    self.config.prefix + "/",
                    prefix_end(self.config.prefix + "/"),
                    start_revision=self._watched_revision + 1,
                    prev_kv=True,
                ):
                    failures = 0
                    if response.canceled:
                        await self._reload_after(response)
                        break
                    await self._apply(response)
            except EtcdError as exc:
                delay = RETRY_S[min(failures, len(RETRY_S) - 1)]
                failures += 1
                log.warning("etcd store watch: %s; again in %.2f s", exc, delay)
                await asyncio.sleep(delay)

    async def _apply(self, response: WatchResponse) -> None:
        mirror = self._require_mirror()
        for event in response.events:
            key = event.kv.key
            if key.startswith(self._docs):
                doc_id = key[len(self._docs) :]
                if event.deleted:
                    mirror.delete(doc_id, decode_type(event.prev_kv), event.kv.mod_revision)
                else:
                    mirror.put(decode_document(doc_id, event.kv))
            elif key == self._marker and not event.deleted:
                mirror.advance(event.kv.mod_revision)
            self._watched_revision = max(self._watched_revision, event.kv.mod_revision)
        self._publish(mirror.last_seq)
        async with self._applied:
            self._applied.notify_all()

    async def _reload_after(self, response: WatchResponse) -> None:
        """The watch fell behind etcd's compaction: load the mirror again."""
        log.warning(
            "etcd store watch canceled at revision %d (%s): etcd compacted its history "
            "up to %d; reloading every document, and readers behind it resync in full",
            self._watched_revision,
            response.cancel_reason or "compacted",
            response.compact_revision,
        )
        await self._load()
        async with self._applied:
            self._applied.notify_all()

    async def _deletions_from_history(
        self, seq: int, known_from: int, mirror: Mirror
    ) -> list[Change]:
        """Deletions after ``known_from`` up to the mirror's floor, from etcd's history.

        Raises :class:`FeedCompacted` (and logs it) when etcd compacted that history.
        """
        client = self._require_client()
        until = revision_of(mirror.floor)
        found: list[Change] = []
        try:
            async for response in client.watch(
                self._docs,
                prefix_end(self._docs),
                start_revision=max(revision_of(known_from), 1),
                prev_kv=True,
            ):
                if response.canceled:
                    raise EtcdCompacted(response.cancel_reason, response.compact_revision)
                for event in response.events:
                    if event.deleted and event.kv.mod_revision <= until:
                        doc_id = event.kv.key[len(self._docs) :]
                        doc_type = decode_type(event.prev_kv)
                        found.append(tombstone(doc_id, doc_type, event.kv.mod_revision))
                if any(event.kv.mod_revision >= until for event in response.events):
                    break  # the replay reached the mirror's floor
        except EtcdCompacted as exc:
            log.warning(
                "a change-feed reader at sequence %d is behind etcd's compaction point "
                "(revision %d): it resynchronises in full",
                seq,
                exc.compact_revision,
            )
            raise FeedCompacted(seq, sequence(exc.compact_revision)) from exc
        except EtcdUnavailable as exc:
            raise StoreUnavailable(f"etcd: {exc}") from exc
        return found

    def _publish(self, seq: int) -> None:
        if self._notifier is not None and seq > self._published:
            self._published = seq
            self._notifier.publish(seq)

    def _key(self, doc_id: str) -> str:
        return self._docs + doc_id

    def _mark_key(self, at: float) -> str:
        return f"{self._marks}{max(at, 0.0):020.3f}"

    def _require_client(self) -> EtcdClient:
        if self._client is None:
            raise StoreUnavailable("the etcd store is not open")
        return self._client

    def _require_mirror(self) -> Mirror:
        if self._mirror is None:
            raise StoreUnavailable("the etcd store is not open")
        return self._mirror


def _written(key: str, value: bytes, revision: int) -> KeyValue:
    """The key as the transaction at ``revision`` left it."""
    return KeyValue(key, value, revision, revision, 0)


def _chunks(
    docs: Sequence[tuple[str, str, JsonObject]],
) -> list[Sequence[tuple[str, str, JsonObject]]]:
    chunks: list[Sequence[tuple[str, str, JsonObject]]] = []
    start, size = 0, 0
    for index, (_, _, body) in enumerate(docs):
        size += len(repr(body))
        if index - start >= TXN_DOCUMENTS or (size > TXN_BYTES and index > start):
            chunks.append(docs[start:index])
            start, size = index, len(repr(body))
    if start < len(docs):
        chunks.append(docs[start:])
    return chunks


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """etcd's refusals as store errors: unavailable (503) or refused with etcd's reason."""
    try:
        yield
    except EtcdUnavailable as exc:
        raise StoreUnavailable(f"etcd: {exc}") from exc
    except EtcdError as exc:
        hint = ""
        if "too large" in str(exc) or "larger than max" in str(exc):
            hint = " (etcd's --max-request-bytes: README, etcd store limits)"
        raise StoreError(f"etcd refused the request: {exc}{hint}") from exc
