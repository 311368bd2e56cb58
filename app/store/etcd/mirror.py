"""The etcd store's in-memory copy of its documents: lookups and the change feed.

Pure: it is filled from a range read and kept current from a watch by
:class:`~app.store.etcd.store.EtcdStore`, and does no I/O itself.

Sequences. A change's sequence is its etcd revision shifted left by
:data:`SEQ_SHIFT` bits plus the document's place in its transaction, so a batch of the
feed can end inside a transaction that wrote several documents (one etcd revision),
and a reader continues after exactly that document. :func:`revision_of` undoes it.

Deletions. etcd keeps no tombstone once history is compacted, so the mirror keeps the
deletions it saw through its watch. It knows every deletion after its *floor* (the
newest change when it was loaded); a reader further behind is served from etcd's
history by the store, or told to resync in full when that history is compacted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.store.base import (
    INDEXED_FIELDS,
    MASTER_ONLY_TYPES,
    Change,
    Document,
    JsonObject,
    Page,
)
from app.store.etcd.client import KeyValue

SEQ_SHIFT = 16
#: The last place in a revision: ``sequence(revision, LAST_PLACE)`` covers all of it.
LAST_PLACE = (1 << SEQ_SHIFT) - 1


def sequence(revision: int, place: int = LAST_PLACE) -> int:
    return revision << SEQ_SHIFT | place if revision else 0


def revision_of(seq: int) -> int:
    return seq >> SEQ_SHIFT


def encode_value(doc_type: str, place: int, body: JsonObject) -> bytes:
    """A document as stored under its key: type, place in its transaction, body."""
    return json.dumps(
        {"type": doc_type, "place": place, "body": body},
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode()


def decode_document(doc_id: str, kv: KeyValue) -> Document:
    stored = json.loads(kv.value)
    return Document(
        id=doc_id,
        type=str(stored["type"]),
        version=str(kv.mod_revision),
        body=stored["body"],
        seq=sequence(kv.mod_revision, int(stored.get("place", 0))),
    )


def decode_type(kv: KeyValue | None) -> str:
    """The type of a deleted document from its last value (``document`` if unreadable)."""
    if kv is None:
        return "document"
    try:
        return str(json.loads(kv.value)["type"])
    except (ValueError, KeyError, TypeError):
        return "document"


def tombstone(doc_id: str, doc_type: str, revision: int) -> Change:
    return Change(
        seq=sequence(revision, 0),
        id=doc_id,
        type=doc_type,
        version=str(revision),
        deleted=True,
        body=None,
    )


def as_change(doc: Document) -> Change:
    return Change(
        seq=doc.seq, id=doc.id, type=doc.type, version=doc.version, deleted=False, body=doc.body
    )


@dataclass(frozen=True, slots=True)
class FeedSlice:
    changes: Sequence[Change]
    last_seq: int
    more: bool


class Mirror:
    """Every live document, every deletion seen since :attr:`floor`, and field indexes."""

    def __init__(self, marker_revision: int) -> None:
        #: The revision of the newest store write applied (the marker key's).
        self.marker_revision = marker_revision
        #: Deletions at or below this sequence are not known here.
        self.floor = sequence(marker_revision)
        self._docs: dict[str, Document] = {}
        self._tombstones: dict[str, Change] = {}
        #: Sequence -> id of every live document and tombstone. Entries arrive in
        #: sequence order, so the dict's order is the feed's order.
        self._order: dict[int, str] = {}
        self._seq_of: dict[str, int] = {}
        self._by_type: dict[str, set[str]] = {}
        self._by_field: dict[tuple[str, str, str], set[str]] = {}

    @property
    def last_seq(self) -> int:
        return sequence(self.marker_revision)

    # --- updates ----------------------------------------------------------------------

    def load(self, docs: Sequence[Document]) -> None:
        """Fill an empty mirror from a range read."""
        for doc in sorted(docs, key=lambda doc: doc.seq):
            self.put(doc)

    def put(self, doc: Document) -> None:
        self._forget(doc.id)
        self._docs[doc.id] = doc
        self._place(doc.id, doc.seq)
        self._by_type.setdefault(doc.type, set()).add(doc.id)
        for key in _index_keys(doc.type, doc.body):
            self._by_field.setdefault((doc.type, *key), set()).add(doc.id)

    def delete(self, doc_id: str, doc_type: str, revision: int) -> None:
        self._forget(doc_id)
        change = tombstone(doc_id, doc_type, revision)
        self._tombstones[doc_id] = change
        self._place(doc_id, change.seq)

    def advance(self, marker_revision: int) -> None:
        self.marker_revision = max(self.marker_revision, marker_revision)

    def forget_deletions_through(self, seq: int) -> int:
        """Drop the deletions at or below ``seq`` (history compacted); return how many."""
        dropped = [doc_id for doc_id, change in self._tombstones.items() if change.seq <= seq]
        for doc_id in dropped:
            self._forget(doc_id)
        self.floor = max(self.floor, seq)
        return len(dropped)

    def _place(self, doc_id: str, seq: int) -> None:
        self._order[seq] = doc_id
        self._seq_of[doc_id] = seq

    def _forget(self, doc_id: str) -> None:
        seq = self._seq_of.pop(doc_id, None)
        if seq is not None:
            del self._order[seq]
        self._tombstones.pop(doc_id, None)
        doc = self._docs.pop(doc_id, None)
        if doc is None:
            return
        self._by_type[doc.type].discard(doc_id)
        for key in _index_keys(doc.type, doc.body):
            ids = self._by_field[(doc.type, *key)]
            ids.discard(doc_id)
            if not ids:
                del self._by_field[(doc.type, *key)]

    # --- reads ------------------------------------------------------------------------

    def get_many(self, doc_ids: Sequence[str]) -> dict[str, Document]:
        return {doc_id: self._docs[doc_id] for doc_id in doc_ids if doc_id in self._docs}

    def find(
        self, doc_type: str, where: Mapping[str, str], after: str | None, limit: int | None
    ) -> Page:
        """Live documents of a type whose indexed fields all match, by id."""
        candidates = self._by_type.get(doc_type, set())
        for field, value in where.items():
            candidates = candidates & self._by_field.get((doc_type, field, value), set())
        ids = sorted(candidates)
        total = len(ids)
        if after is not None:
            ids = [doc_id for doc_id in ids if doc_id > after]
        page = ids if limit is None else ids[:limit]
        more = limit is not None and len(ids) > limit
        items = [self._docs[doc_id] for doc_id in page]
        return Page(items=items, total=total, next_after=page[-1] if more else None)

    def changes(self, seq: int, limit: int, backfill: Sequence[Change] = ()) -> FeedSlice:
        """Up to ``limit`` changes after ``seq`` in order, master-only types left out.

        ``backfill`` are deletions from etcd's history that this mirror does not hold
        (a reader behind :attr:`floor`); a document live or deleted here since wins.
        """
        newer = list(self._newer_than(seq))
        if backfill:
            known = {change.id for change in newer}
            newer += [c for c in backfill if c.seq > seq and c.id not in known]
            newer.sort(key=lambda change: change.seq)
        shipped = [change for change in newer if change.type not in MASTER_ONLY_TYPES]
        more = len(shipped) > limit
        shipped = shipped[:limit]
        return FeedSlice(shipped, shipped[-1].seq if more else self.last_seq, more)

    def _newer_than(self, seq: int) -> Iterator[Change]:
        """Live documents and tombstones above ``seq``, oldest first."""
        found: list[int] = []
        for entry_seq in reversed(self._order):
            if entry_seq <= seq:
                break
            found.append(entry_seq)
        for entry_seq in reversed(found):
            doc_id = self._order[entry_seq]
            doc = self._docs.get(doc_id)
            yield as_change(doc) if doc is not None else self._tombstones[doc_id]


def _index_keys(doc_type: str, body: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(field, value)`` for each string value of an indexed field, list elements too."""
    for field in INDEXED_FIELDS.get(doc_type, ()):
        value = body.get(field)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                yield field, item
