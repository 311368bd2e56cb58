"""The SQL++ statements of the Couchbase store: indexes, lookups and the change feed.

Lookups run at REQUEST_PLUS consistency (they see every earlier write) on indexes
created at open: one by type, one by sequence, and one per indexed field (an array
index, so list fields match any element). Values are always named parameters; only
identifiers and the document type are written into the text, escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.store.base import INDEXED_FIELDS, MASTER_ONLY_TYPES
from app.store.couchbase.codec import DELETED_FIELD, SEQ_FIELD


def quote_identifier(name: str) -> str:
    """A SQL++ escaped identifier: any name, safely inside backticks."""
    return "`" + name.replace("`", "``") + "`"


def _literal(value: str) -> str:
    """A SQL++ string literal (JSON string syntax)."""
    return json.dumps(value)


def _index_name(*parts: str) -> str:
    return quote_identifier("engine_" + "_".join(re.sub(r"\W", "_", p) for p in parts))


def _elements(field_name: str, alias: str = "") -> str:
    """The field as an array: a list field's elements, or a scalar field's one value."""
    return f"TOARRAY({alias}{quote_identifier(field_name)})"


_LIVE = f"{DELETED_FIELD} IS MISSING"


def index_statements(keyspace: str) -> list[str]:
    """Idempotent index definitions: by type, by sequence, and per indexed field.

    The field indexes are partial (one type each) array indexes over ``TOARRAY``, so
    one definition serves scalar fields and list fields alike.
    """
    statements = [
        f"CREATE INDEX {_index_name('type')} IF NOT EXISTS "
        f"ON {keyspace}(type, META().id) WHERE {_LIVE}",
        f"CREATE INDEX {_index_name('seq')} IF NOT EXISTS ON {keyspace}({SEQ_FIELD}, type)",
    ]
    for doc_type in sorted(INDEXED_FIELDS):
        for field_name in sorted(INDEXED_FIELDS[doc_type]):
            key = f"DISTINCT ARRAY v FOR v IN {_elements(field_name)} END"
            statements.append(
                f"CREATE INDEX {_index_name(doc_type, field_name)} IF NOT EXISTS "
                f"ON {keyspace}({key}, META().id) "
                f"WHERE type = {_literal(doc_type)} AND {_LIVE}"
            )
    return statements


_DOCUMENT_COLUMNS = "META(d).id AS id, META(d).cas AS cas, d AS doc"


@dataclass(frozen=True, slots=True)
class FindQuery:
    """The SQL++ for one ``find``: a page of documents and the count of all matches.

    The type is written as a literal so that the planner can pick the partial indexes;
    field values are parameters.
    """

    keyspace: str
    doc_type: str
    where: Mapping[str, str] = field(default_factory=dict)
    after: str | None = None
    limit: int | None = None

    def _conditions(self) -> str:
        conditions = [f"d.type = {_literal(self.doc_type)}", f"d.{_LIVE}"]
        conditions += [
            f"ANY v IN {_elements(name, 'd.')} SATISFIES v = $w{i} END"
            for i, name in enumerate(self.where)
        ]
        return " AND ".join(conditions)

    def count_statement(self) -> str:
        return f"SELECT RAW COUNT(*) FROM {self.keyspace} AS d WHERE {self._conditions()}"

    def count_parameters(self) -> dict[str, object]:
        return {f"w{i}": value for i, value in enumerate(self.where.values())}

    def page_statement(self) -> str:
        after = " AND META(d).id > $after" if self.after is not None else ""
        limit = " LIMIT $limit" if self.limit is not None else ""
        return (
            f"SELECT {_DOCUMENT_COLUMNS} FROM {self.keyspace} AS d "
            f"WHERE {self._conditions()}{after} ORDER BY META(d).id{limit}"
        )

    def page_parameters(self) -> dict[str, object]:
        parameters = self.count_parameters()
        if self.after is not None:
            parameters["after"] = self.after
        if self.limit is not None:
            parameters["limit"] = self.limit + 1  # one more tells whether a next page exists
        return parameters


def changes_statement(keyspace: str) -> str:
    """Stored changes above ``$since`` in sequence order, hidden types left out."""
    return (
        f"SELECT {_DOCUMENT_COLUMNS} FROM {keyspace} AS d "
        f"WHERE d.{SEQ_FIELD} > $since AND d.type NOT IN $hidden "
        f"ORDER BY d.{SEQ_FIELD} LIMIT $limit"
    )


def changes_parameters(since: int, limit: int) -> dict[str, object]:
    return {"since": since, "hidden": sorted(MASTER_ONLY_TYPES), "limit": limit + 1}
