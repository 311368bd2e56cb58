"""The embedded store's documents: reads, compare-and-swap writes, lookups by field.

What every server does with its own database, and all an API request ever asks of
it. The change feed those writes leave behind is read in ``feed``; an edge's copy of
the master's documents, which keeps the master's versions, is written in ``replica``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.store.base import (
    Document,
    DocumentExists,
    DocumentNotFound,
    JsonObject,
    Page,
    VersionConflict,
    document_body,
    lookup_filter,
    refuse_repeats,
)
from app.store.sqlite.database import Database
from app.store.sqlite.tables import DOCUMENT_COLUMNS, IDS_IN_JSON, Row, Transaction, document


class Documents:
    """Documents by id and by indexed field; each write takes the next sequence as its
    version, and a write naming an expected version fails once the document moved on."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, doc_id: str) -> Document:
        found = await self.get_many([doc_id])
        if doc_id not in found:
            raise DocumentNotFound(doc_id)
        return found[doc_id]

    async def get_many(self, doc_ids: Sequence[str]) -> dict[str, Document]:
        async with self._db.transaction() as tx:
            rows = await tx.fetch(
                f"SELECT {DOCUMENT_COLUMNS} FROM docs WHERE deleted = 0 AND {IDS_IN_JSON}",
                (json.dumps(list(doc_ids)),),
            )
        return {doc.id: doc for doc in map(document, rows)}

    async def find(
        self,
        doc_type: str,
        *,
        where: Mapping[str, str] | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> Page:
        where = lookup_filter(doc_type, where, limit)
        lookup = _Lookup(doc_type, where)
        async with self._db.transaction() as tx:
            [(total,)] = await tx.fetch(*lookup.count())
            rows = await tx.fetch(*lookup.page(after, limit))
        items = [document(row) for row in rows[:limit]]
        more = limit is not None and len(rows) > limit
        return Page(items=items, total=total, next_after=items[-1].id if more else None)

    async def insert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        [doc] = await self.insert_many([(doc_id, doc_type, body)])
        return doc

    async def insert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        rows = [Row(doc_id, doc_type, document_body(body)) for doc_id, doc_type, body in docs]
        ids = [row.id for row in rows]
        refuse_repeats(ids)
        async with self._db.transaction(write=True) as tx:
            existing = await tx.fetch(
                f"SELECT id FROM docs WHERE deleted = 0 AND {IDS_IN_JSON} LIMIT 1",
                (json.dumps(ids),),
            )
            if existing:
                raise DocumentExists(existing[0][0])
            return await tx.write(rows)

    async def replace(
        self, doc_id: str, body: JsonObject, *, expected_version: str | None = None
    ) -> Document:
        async with self._db.transaction(write=True) as tx:
            doc_type = await _check_version(tx, doc_id, expected_version)
            [doc] = await tx.write([Row(doc_id, doc_type, document_body(body))])
        return doc

    async def upsert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        async with self._db.transaction(write=True) as tx:
            [doc] = await tx.write([Row(doc_id, doc_type, document_body(body))])
        return doc

    async def upsert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        rows = [Row(doc_id, doc_type, document_body(body)) for doc_id, doc_type, body in docs]
        refuse_repeats([row.id for row in rows])
        async with self._db.transaction(write=True) as tx:
            return await tx.write(rows)

    async def delete(self, doc_id: str, *, expected_version: str | None = None) -> None:
        async with self._db.transaction(write=True) as tx:
            doc_type = await _check_version(tx, doc_id, expected_version)
            await tx.write([Row(doc_id, doc_type, None)])


async def _check_version(tx: Transaction, doc_id: str, expected_version: str | None) -> str:
    """Return the live document's type, or raise when it is missing or moved on."""
    rows = await tx.fetch("SELECT type, version FROM docs WHERE id = ? AND deleted = 0", (doc_id,))
    if not rows:
        raise DocumentNotFound(doc_id)
    [(doc_type, version)] = rows
    if expected_version is not None and expected_version != version:
        raise VersionConflict(doc_id, expected_version, version)
    return str(doc_type)


@dataclass(frozen=True, slots=True)
class _Lookup:
    """The SQL of a find: live documents of a type whose indexed fields all match."""

    doc_type: str
    where: Mapping[str, str]

    def count(self) -> tuple[str, list[Any]]:
        condition, params = self._condition()
        return f"SELECT count(*) FROM docs WHERE {condition}", params

    def page(self, after: str | None, limit: int | None) -> tuple[str, list[Any]]:
        """One page by id; one row beyond ``limit`` tells whether more follow."""
        condition, params = self._condition()
        sql = f"SELECT {DOCUMENT_COLUMNS} FROM docs WHERE {condition}"
        if after is not None:
            sql += " AND id > ?"
            params.append(after)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit + 1)
        return sql, params

    def _condition(self) -> tuple[str, list[Any]]:
        conditions = ["type = ?", "deleted = 0"]  # a literal 0: the partial index applies
        params: list[Any] = [self.doc_type]
        for field, value in sorted(self.where.items()):
            conditions.append("id IN (SELECT id FROM doc_index WHERE field = ? AND value = ?)")
            params += [field, value]
        return " AND ".join(conditions), params
