"""How documents are stored in the bucket, and read back from KV and from query rows.

A document is stored under its id as its body plus ``type`` and ``_seq`` (its place in
the change feed); its ``version`` is the KV CAS. A deletion stores a tombstone
``{"type": ..., "_deleted": true, "_seq": n}``, which reads as missing. Keys under
:data:`INTERNAL_KEY_PREFIX` are the store's own bookkeeping (the sequence counter).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.store.base import (
    Change,
    ChangeBatch,
    Document,
    DocumentNotFound,
    JsonObject,
    StoreError,
    document_body,
)

#: Keys under this prefix hold the store's own bookkeeping, never documents.
INTERNAL_KEY_PREFIX = "_engine::"
SEQUENCE_KEY = f"{INTERNAL_KEY_PREFIX}seq"

#: The stored fields that are the store's, never a document's.
SEQ_FIELD = "_seq"
DELETED_FIELD = "_deleted"


def _user_fields(data: Mapping[str, Any]) -> JsonObject:
    """``data`` without the envelope (id, type, version) and without our own fields."""
    return {k: v for k, v in document_body(data).items() if k not in (SEQ_FIELD, DELETED_FIELD)}


def encode_document(doc_type: str, body: Mapping[str, Any], seq: int) -> JsonObject:
    """What is stored for a live document: its body, its type and its sequence."""
    return {**_user_fields(body), "type": doc_type, SEQ_FIELD: seq}


def encode_tombstone(doc_type: str, seq: int) -> JsonObject:
    return {"type": doc_type, DELETED_FIELD: True, SEQ_FIELD: seq}


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One stored value with its key and CAS, as read by KV or returned by a query."""

    id: str
    cas: int
    stored: JsonObject

    @classmethod
    def from_query(cls, row: object) -> StoredRow:
        if not isinstance(row, dict) or not isinstance(row.get("doc"), dict):
            raise StoreError(f"unexpected query row from Couchbase: {row!r}")
        return cls(id=str(row["id"]), cas=int(row["cas"]), stored=row["doc"])

    @property
    def type(self) -> str:
        return str(self.stored["type"])

    @property
    def seq(self) -> int:
        return int(self.stored.get(SEQ_FIELD, 0))

    @property
    def deleted(self) -> bool:
        return bool(self.stored.get(DELETED_FIELD, False))

    @property
    def version(self) -> str:
        return str(self.cas)

    def body(self) -> JsonObject:
        return _user_fields(self.stored)

    def document(self) -> Document:
        if self.deleted:
            raise DocumentNotFound(self.id)
        return Document(self.id, self.type, self.version, self.body(), self.seq)

    def change(self) -> Change:
        body = None if self.deleted else self.body()
        return Change(self.seq, self.id, self.type, self.version, self.deleted, body)


def changes_batch(rows: Sequence[StoredRow], *, limit: int, newest: int) -> ChangeBatch:
    """A batch from up to ``limit + 1`` feed rows read after the newest sequence was.

    When the feed is exhausted the reader continues from ``newest`` (past hidden
    changes too); rows written since then may go beyond it.
    """
    changes = [row.change() for row in rows[:limit]]
    more = len(rows) > limit
    last_seq = changes[-1].seq if more else max([newest, *(c.seq for c in changes)])
    return ChangeBatch(changes=changes, last_seq=last_seq, more=more)


def count_of(rows: Sequence[object]) -> int:
    """The number a ``SELECT RAW COUNT(*)`` returned."""
    if len(rows) != 1 or not isinstance(rows[0], int):
        raise StoreError(f"unexpected count from Couchbase: {rows!r}")
    return rows[0]
