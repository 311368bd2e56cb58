"""The master's side of embedded replication: answering ``replica.changes``.

Batches are bounded by count and by encoded size, so a batch of large documents never
exceeds the link's frame limit (a frame too large closes the link, and the edge would
ask for the same batch again forever). A change that could not travel even alone (a
document written past the API's limits, by another backend or an older version) is
left out and named in ``skipped``, so the rest of the feed still flows.

An answer is built as JSON text from the feed's text (:class:`EncodedFeed`: no body is
parsed or written again) and handed to the link as is. :class:`SharedFeed` reads each
batch once however many edges ask for it at once: when a thousand edges catch up
together they ask for the same batches, and the answer for the same question at the
same store generation is the same (bench/README.md §6).
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from app.errors import ResyncRequired
from app.link.codec import Encoded, preencoded
from app.link.ops import ReplicaBatch, ReplicaChangesArgs, ReplicaDocuments, ReplicaFetchArgs
from app.services.limits import unshippable
from app.store.base import (
    MASTER_ONLY_TYPES,
    Change,
    EncodedChange,
    EncodedChangeBatch,
    EncodedFeed,
    FeedCompacted,
    Store,
)

#: Largest number of changes one answer carries.
MAX_BATCH = 1000
#: Answers kept for the store's current generation (a batch is at most one frame).
CACHED_ANSWERS = 16


@dataclass(frozen=True, slots=True)
class EncodedAnswer:
    """A ``replica.changes`` result as JSON text (a :class:`ReplicaBatch`), and what it
    left out, for the log."""

    text: str
    skipped: Sequence[Mapping[str, Any]] = ()

    def result(self) -> Encoded:
        """What a link handler returns: the link writes the text into its frame as is."""
        return preencoded(self.text)

    def as_json(self) -> ReplicaBatch:
        batch: ReplicaBatch = json.loads(self.text)
        return batch


async def replica_changes(
    store: Store, args: ReplicaChangesArgs, *, max_bytes: int
) -> ReplicaBatch:
    """One batch of the feed after ``since`` (``limit``, ``horizon`` as the edge asks)."""
    return (await encoded_replica_changes(store, args, max_bytes=max_bytes)).as_json()


async def encoded_replica_changes(
    store: Store, args: ReplicaChangesArgs, *, max_bytes: int
) -> EncodedAnswer:
    """:func:`replica_changes` as JSON text; raises `ResyncRequired`."""
    return _answer(await _read(store, args), args["since"], max_bytes)


class SharedFeed:
    """Answers ``replica.changes`` once per question and store generation.

    Edges asking the same question (``since``, ``limit``, ``horizon``, the frame's
    room) while the store has not been written to get the same text: the first one
    reads it, the others wait for that read, and later ones take it from the cache.
    Every write transaction (compaction moving a document to a higher sequence, a
    purge of tombstones, a replica reset) moves the store's generation, which empties
    the cache. A store without a generation is read for every question.
    """

    def __init__(self, store: Store, *, size: int = CACHED_ANSWERS) -> None:
        self._store = store
        self._size = size
        self._generation: int | None = None
        self._answers: OrderedDict[tuple[int, int, int, int], asyncio.Future[EncodedAnswer]] = (
            OrderedDict()
        )
        #: Reads in flight, kept referenced until done.
        self._reads: set[asyncio.Task[EncodedAnswer]] = set()

    async def changes(self, args: ReplicaChangesArgs, *, max_bytes: int) -> EncodedAnswer:
        """Raises `ResyncRequired`."""
        store = self._store
        if not isinstance(store, EncodedFeed):
            return await encoded_replica_changes(store, args, max_bytes=max_bytes)
        if store.generation != self._generation:
            self._answers.clear()
            self._generation = store.generation
        key = (args["since"], _limit(args), args["horizon"], max_bytes)
        answer = self._answers.get(key)
        if answer is None:
            read = asyncio.create_task(self._read(store, args, max_bytes, key))
            self._reads.add(read)
            read.add_done_callback(self._settled)
            answer = self._answers[key] = read
            while len(self._answers) > self._size:
                self._answers.popitem(last=False)
        else:
            self._answers.move_to_end(key)
        # Shielded: one waiting edge's link closing must not cancel the others' read.
        return await asyncio.shield(answer)

    async def _read(
        self,
        store: Store,
        args: ReplicaChangesArgs,
        max_bytes: int,
        key: tuple[int, int, int, int],
    ) -> EncodedAnswer:
        try:
            batch = await _read(store, args)
        except BaseException:
            self._forget(key)
            raise
        if batch.generation != self._generation:
            self._forget(key)  # read after a write: true, but not for the generation asked
        return _answer(batch, args["since"], max_bytes)

    def _forget(self, key: tuple[int, int, int, int]) -> None:
        """Drop this read's answer (not a newer read's under the same key)."""
        if self._answers.get(key) is asyncio.current_task():
            del self._answers[key]

    def _settled(self, read: asyncio.Task[EncodedAnswer]) -> None:
        self._reads.discard(read)
        if not read.cancelled():
            read.exception()  # retrieved: every edge that waited has its own copy


def _limit(args: ReplicaChangesArgs) -> int:
    limit = args["limit"]
    return max(1, min(MAX_BATCH if limit is None else limit, MAX_BATCH))


async def _read(store: Store, args: ReplicaChangesArgs) -> EncodedChangeBatch:
    """The slice of the feed ``args`` asks for, as text; raises `ResyncRequired`."""
    since, limit, horizon = args["since"], _limit(args), args["horizon"]
    try:
        if isinstance(store, EncodedFeed):
            return await store.encoded_changes_since(since, limit=limit, horizon=horizon)
        batch = await store.changes_since(since, limit=limit, horizon=horizon)
    except FeedCompacted as exc:
        raise ResyncRequired(str(exc)) from exc
    return EncodedChangeBatch(
        changes=[_encoded(change) for change in batch.changes],
        last_seq=batch.last_seq,
        more=batch.more,
        horizon=batch.horizon,
        generation=-1,
    )


def _answer(batch: EncodedChangeBatch, since: int, max_bytes: int) -> EncodedAnswer:
    """The batch cut to ``max_bytes`` of changes, what no frame can carry left out."""
    changes: list[str] = []
    skipped: list[dict[str, Any]] = []
    size, last_seq = 0, since
    for change in batch.changes:
        text = change.text
        item_size = _utf8_size(text) + 1
        problem = unshippable(text, item_size, max_bytes=max_bytes)
        if problem is not None:
            left_out = {"id": change.id, "type": change.type, "seq": change.seq, "reason": problem}
            item_size = len(orjson.dumps(left_out)) + 1
        if (changes or skipped) and size + item_size > max_bytes:
            # Cut short: continue after the last change that fits.
            return _encode(changes, skipped, last_seq, more=True, horizon=batch.horizon)
        if problem is None:
            changes.append(text)
        else:
            skipped.append(left_out)
        size += item_size
        last_seq = change.seq
    return _encode(changes, skipped, batch.last_seq, more=batch.more, horizon=batch.horizon)


def _encode(
    changes: list[str], skipped: list[dict[str, Any]], last_seq: int, *, more: bool, horizon: int
) -> EncodedAnswer:
    """A :class:`ReplicaBatch`'s text around the changes' own."""
    text = (
        f'{{"changes":[{",".join(changes)}],"last_seq":{last_seq},'
        f'"more":{"true" if more else "false"},"horizon":{horizon}'
    )
    if skipped:
        text += f',"skipped":{orjson.dumps(skipped).decode()}'
    return EncodedAnswer(text + "}", skipped)


def _encoded(change: Change) -> EncodedChange:
    """A change of a store without :class:`EncodedFeed`, as the link writes it."""
    data = change.as_json()
    try:
        text = orjson.dumps(data).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: json writes it
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return EncodedChange(change.seq, change.id, change.type, text)


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


#: Changes :func:`changed_types` reads at most before answering "anything".
TYPES_READ_AT_MOST = 10 * MAX_BATCH


async def changed_types(store: Store, since: int) -> set[str] | None:
    """The types of the documents written after ``since`` (master-only ones aside), or
    None when that cannot be told cheaply: the feed no longer reaches back that far, or
    more than :data:`TYPES_READ_AT_MOST` changes were made."""
    kinds: set[str] = set()
    read, more = 0, True
    try:
        while more and read < TYPES_READ_AT_MOST:
            batch = await _read(store, {"since": since, "limit": None, "horizon": 0})
            kinds.update(change.type for change in batch.changes)
            read += len(batch.changes)
            since, more = batch.last_seq, batch.more
    except ResyncRequired:
        return None
    return None if more else kinds


async def versions_since(store: Store, seq: int) -> tuple[dict[str, str | None], int]:
    """Every document changed after ``seq``: its new version, or None when deleted.

    With Couchbase, XDCR carries the documents; ``model.updated`` carries these
    versions so an edge can tell when XDCR has delivered them.
    """
    versions: dict[str, str | None] = {}
    more = True
    while more:
        batch = await store.changes_since(seq, limit=MAX_BATCH)
        for change in batch.changes:
            versions[change.id] = None if change.deleted else change.version
        seq, more = batch.last_seq, batch.more
    return versions, seq


async def replica_fetch(store: Store, args: ReplicaFetchArgs) -> ReplicaDocuments:
    """The master's current copy of the documents an edge asks for (never its secrets)."""
    found = await store.get_many(args["ids"])
    return {
        "documents": [doc.as_json() for doc in found.values() if doc.type not in MASTER_ONLY_TYPES]
    }
