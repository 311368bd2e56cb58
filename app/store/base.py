"""The document store protocol every backend implements.

Documents are JSON objects with an ``id``, a ``type`` and an opaque ``version``
(the backend's revision or CAS). Writes that name an expected version fail with
:class:`VersionConflict` when the document moved on. Every write also appends to a
change feed, ordered by a store-wide sequence number, which replication reads.
Sequence numbers only grow; they may skip values.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

JsonObject = dict[str, Any]

#: Document types that never leave the master (kept off every replica).
MASTER_ONLY_TYPES: frozenset[str] = frozenset({"edge_secret"})

#: The fields each document type can be looked up by. List-valued fields match
#: when any element equals the value (systems by module id).
INDEXED_FIELDS: Mapping[str, frozenset[str]] = {
    "system": frozenset({"edge_control_id", "modules"}),
    "module": frozenset({"driver_id"}),
    "user": frozenset({"email"}),
    "token": frozenset({"user_id", "system_id", "hash"}),
    "control_event": frozenset({"edge_id"}),
    "edge": frozenset({"admins"}),
}

#: Keys of a document's JSON that belong to the store, never to its body.
ENVELOPE_KEYS: frozenset[str] = frozenset({"id", "type", "version"})


def document_body(data: Mapping[str, Any]) -> JsonObject:
    """The body to store for ``data``: a document's JSON may be written back as it was read."""
    return {key: value for key, value in data.items() if key not in ENVELOPE_KEYS}


def lookup_filter(
    doc_type: str, where: Mapping[str, str] | None, limit: int | None
) -> Mapping[str, str]:
    """The filter of a :meth:`Store.find`, refused as every backend refuses it: fields
    that are not indexed, a ``limit`` below 1."""
    where = where or {}
    require_indexed(doc_type, where)
    require_positive("limit", limit)
    return where


def require_indexed(doc_type: str, where: Mapping[str, str]) -> None:
    """Refuse a lookup on fields that are not indexed: it would be a full scan, or wrong."""
    unknown = set(where) - INDEXED_FIELDS.get(doc_type, frozenset())
    if unknown:
        raise ValueError(f"{doc_type!r} documents are not indexed by {', '.join(sorted(unknown))}")


class StoreError(Exception):
    """Base class of store failures."""


class DocumentNotFound(StoreError):
    def __init__(self, doc_id: str) -> None:
        super().__init__(f"document {doc_id!r} not found")
        self.doc_id = doc_id


class DocumentExists(StoreError):
    def __init__(self, doc_id: str) -> None:
        super().__init__(f"document {doc_id!r} already exists")
        self.doc_id = doc_id


class VersionConflict(StoreError):
    def __init__(self, doc_id: str, expected: str, actual: str | None) -> None:
        super().__init__(f"document {doc_id!r} is at version {actual}, not {expected}")
        self.doc_id = doc_id
        self.expected = expected
        self.actual = actual


class StoreUnavailable(StoreError):
    """The backend cannot take the operation now (read-only file, lost cluster)."""


class FeedCompacted(StoreError):
    """The feed cannot continue from ``since``: the reader must resync from nothing.

    Either deletions after ``since`` were purged (``oldest`` is where the feed is whole
    again), or ``since`` lies beyond the newest change (the feed was recreated).
    """

    def __init__(self, since: int, oldest: int) -> None:
        super().__init__(
            f"changes since {since} are not available (the feed is whole from {oldest}): resync"
        )
        self.since = since
        self.oldest = oldest


@dataclass(frozen=True, slots=True)
class Document:
    """One stored document: its body never repeats ``id``, ``type`` or ``version``."""

    id: str
    type: str
    version: str
    body: JsonObject
    seq: int = 0

    def as_json(self) -> JsonObject:
        return {"id": self.id, "type": self.type, "version": self.version, **self.body}


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed: the document's latest state, or its tombstone."""

    seq: int
    id: str
    type: str
    version: str
    deleted: bool
    body: JsonObject | None = None

    def as_json(self) -> JsonObject:
        return {
            "seq": self.seq,
            "id": self.id,
            "type": self.type,
            "version": self.version,
            "deleted": self.deleted,
            "body": self.body,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Change:
        return cls(
            seq=int(data["seq"]),
            id=str(data["id"]),
            type=str(data["type"]),
            version=str(data["version"]),
            deleted=bool(data["deleted"]),
            body=data.get("body"),
        )


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """A bounded slice of the feed; ``last_seq`` is where the next read continues.

    ``horizon`` is how far the feed had been compacted when the slice was read; a
    reader passes it back with its next read so that a compaction during a long
    catch-up is noticed, and one before it is not mistaken for a gap.
    """

    changes: Sequence[Change]
    last_seq: int
    more: bool
    horizon: int = 0
    #: Changes the master left out because no link frame can carry them: ``{id, type,
    #: seq, reason}`` each (replication over the link only).
    skipped: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class EncodedChange:
    """One entry of the change feed as JSON text, keys as :meth:`Change.as_json` writes
    them: what a link frame carries, read without parsing the body."""

    seq: int
    id: str
    type: str
    text: str


@dataclass(frozen=True, slots=True)
class EncodedChangeBatch:
    """A :class:`ChangeBatch` of :class:`EncodedChange`; ``generation`` is the store's
    :attr:`EncodedFeed.generation` the slice was read at."""

    changes: Sequence[EncodedChange]
    last_seq: int
    more: bool
    horizon: int
    generation: int


@dataclass(frozen=True, slots=True)
class SetAside:
    """A corrupt replica found when the store opened, moved aside so that the store
    starts empty and is rebuilt from the master (README, "A corrupt replica")."""

    problems: tuple[str, ...]
    moved_to: str
    at: datetime

    def as_json(self) -> JsonObject:
        return {
            "problems": list(self.problems),
            "moved_to": self.moved_to,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a lookup, ordered by id; ``next_after`` continues it."""

    items: Sequence[Document]
    total: int
    next_after: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class SequenceNotifier:
    """Broadcasts the newest sequence to any number of watchers.

    Watchers see the latest value, possibly skipping intermediate ones, so a slow
    reader never builds a backlog; they never miss the newest value.
    """

    def __init__(self, seq: int) -> None:
        self._seq = seq
        self._changed = asyncio.Event()
        self._closed = False

    def publish(self, seq: int) -> None:
        self._seq = seq
        self._wake()

    def close(self) -> None:
        """End every watch (the store is closing)."""
        self._closed = True
        self._wake()

    async def watch(self) -> AsyncIterator[int]:
        """Yield the current sequence, then each newer one, until :meth:`close`."""
        seen: int | None = None
        while not self._closed:
            if self._seq != seen:
                seen = self._seq
                yield seen
            else:
                await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


@runtime_checkable
class Store(Protocol):
    """A versioned document store with lookups by indexed field and a change feed."""

    async def open(self) -> None:
        """Connect and create what is missing (tables, indexes); idempotent."""

    async def close(self) -> None:
        """Disconnect and end every :meth:`subscribe` iterator; idempotent."""

    async def get(self, doc_id: str) -> Document:
        """Return the document or raise :class:`DocumentNotFound`."""

    async def get_many(self, doc_ids: Sequence[str]) -> dict[str, Document]:
        """Return the documents that exist among ``doc_ids``, keyed by id."""

    async def insert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        """Create a document or raise :class:`DocumentExists` (a deleted id may be reused).

        In every write, the keys of :data:`ENVELOPE_KEYS` in ``body`` are ignored.
        """

    async def insert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        """Insert ``(id, type, body)`` documents in one go: all of them, or none.

        Raises :class:`DocumentExists` naming an id that exists or repeats in ``docs``.
        """

    async def replace(
        self, doc_id: str, body: JsonObject, *, expected_version: str | None = None
    ) -> Document:
        """Overwrite a document's body; with ``expected_version``, compare-and-swap."""

    async def upsert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        """Write a document whatever its current state (system-owned documents)."""

    async def upsert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        """:meth:`upsert` each ``(id, type, body)``, in one transaction where the backend
        has them (SQLite: all or none); an id may appear once."""

    async def delete(self, doc_id: str, *, expected_version: str | None = None) -> None:
        """Delete a document, leaving a tombstone in the change feed."""

    async def find(
        self,
        doc_type: str,
        *,
        where: Mapping[str, str] | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> Page:
        """Documents of a type, by id, filtered on indexed fields (all must match).

        ``after`` and ``limit`` page by id; ``total`` counts every match regardless.
        Raises ``ValueError`` for a field not in :data:`INDEXED_FIELDS` of the type.
        """

    async def changes_since(self, seq: int, *, limit: int = 500, horizon: int = 0) -> ChangeBatch:
        """Changes with a sequence above ``seq`` in order, master-only types excluded.

        Each document appears once, at its latest state (or tombstone). ``last_seq``
        moves past excluded changes too, so a reader never asks for them again.
        Raises :class:`FeedCompacted` when tombstones after ``seq`` were purged since
        the reader's ``horizon`` (the batch's ``horizon`` it read before; 0 for a
        reader starting out) or ``seq`` is beyond the newest change; ``seq`` 0 (a
        reader holding nothing) is always served.
        """

    async def last_seq(self) -> int:
        """The sequence of the newest change (0 for an empty store)."""

    def subscribe(self) -> AsyncIterator[int]:
        """Yield the newest sequence now, then after each committed write, until close.

        A slow reader may skip values but always gets the newest one, so catching up
        after each value misses nothing.
        """
        ...


@runtime_checkable
class ReplicaStore(Store, Protocol):
    """A store that can hold an edge's copy of the master's database, fed over the link.

    The embedded store is one. Couchbase is not: XDCR copies its buckets, keeping the
    master's CAS, which no SDK client can choose, so a link-fed replica could not keep
    the master's versions there. Which of the two a backend is decides how the master
    and the edge replicate (``isinstance(store, ReplicaStore)``).
    """

    async def apply_changes(self, changes: Sequence[Change], *, source_seq: int) -> None:
        """Apply a master's changes to this replica and record ``source_seq``.

        Each document takes the master's version (a tombstone when deleted); a change
        no newer than what the replica holds for that id is skipped. Idempotent and
        atomic: the data and the recorded sequence commit together.
        """

    async def replica_seq(self) -> int:
        """The master sequence this replica has applied up to (0 when never synced)."""

    async def reset_replica(self) -> None:
        """Drop every replicated document before a full resync."""

    @property
    def set_aside(self) -> SetAside | None:
        """The corrupt copy found and moved aside when this replica opened, if any."""
        ...


@runtime_checkable
class EncodedFeed(Protocol):
    """A store that hands out its change feed as JSON text, never parsing the bodies.

    The master answers ``replica.changes`` with what it reads here. The embedded store
    keeps each body as JSON text already; parsing every body and writing it back on
    every read of the feed was most of the master's work when many edges catch up.
    """

    @property
    def generation(self) -> int:
        """Moves on with every write transaction (purges and resets included): a read
        of the feed at one generation reads the same until it moves."""
        ...

    async def encoded_changes_since(
        self, seq: int, *, limit: int = 500, horizon: int = 0
    ) -> EncodedChangeBatch:
        """:meth:`Store.changes_since` as text; raises :class:`FeedCompacted` alike."""
        ...


def positive_seconds(text: str) -> float:
    """A database URL's ``timeout`` option, refused unless a positive number."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"timeout must be a number of seconds, not {text!r}") from None
    if not value > 0:
        raise ValueError(f"timeout must be positive, not {text!r}")
    return value


def require_positive(name: str, value: int | None) -> None:
    """Backends refuse a zero or negative ``limit`` the same way."""
    if value is not None and value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")


def refuse_repeats(doc_ids: Sequence[str]) -> None:
    """A batch naming one id twice is refused like an insert over an existing one."""
    seen: set[str] = set()
    for doc_id in doc_ids:
        if doc_id in seen:
            raise DocumentExists(doc_id)
        seen.add(doc_id)
