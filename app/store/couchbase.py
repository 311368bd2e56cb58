"""The Couchbase store: KV with CAS for documents, SQL++ for lookups and the change feed.

Database URL::

    couchbase://USER:PASSWORD@HOST[:PORT][,HOST2...]/BUCKET?scope=_default&collection=_default&timeout=10
    couchbases://...   the same over TLS

``scope`` and ``collection`` default to ``_default``; ``timeout`` (seconds, default 10)
bounds connecting, every KV operation and every query. Any other query parameter is
passed to the SDK's connection string unchanged (for example
``trust_store_path=/etc/engine/couchbase-ca.pem`` with ``couchbases://``). The user
name and password are percent-decoded. Needs Couchbase Server 7.1+ with the data and
query services, and the optional SDK extra (``pip install 'engine-ha[couchbase]'``);
the SDK is imported on first use only, so this module loads without it.

Storage layout. A document is stored under its id as its body plus ``type`` and
``_seq``; its ``version`` is the KV CAS, so every write is a CAS operation and stale
writers get :class:`VersionConflict`. A delete replaces the document with a tombstone
``{"type": ..., "_deleted": true, "_seq": n}``, which reads as missing. Lookups are
SQL++ queries at REQUEST_PLUS consistency (they see every earlier write) on indexes
created at :meth:`CouchbaseStore.open`: one by type, one by sequence, and one per
indexed field (an array index, so list fields match any element).

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
deletes again the ones it wrote; a reader may see them in between.

Replication. Couchbase buckets are replicated by XDCR (see :mod:`app.store.xdcr`), not
over the control link: with this backend the link-based replica sync is off
(DESIGN §7), and :meth:`CouchbaseStore.apply_changes`, :meth:`~CouchbaseStore.replica_seq`
and :meth:`~CouchbaseStore.reset_replica` raise :class:`ReplicatedByXdcr`. A client
cannot choose a CAS, so a replica written through the SDK could not keep the master's
versions, while XDCR does. The counter document belongs to each cluster: the XDCR
filter keeps keys under ``_engine::`` local.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from app.store.base import (
    INDEXED_FIELDS,
    MASTER_ONLY_TYPES,
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
    refuse_repeats,
    require_indexed,
    require_positive,
)

log = logging.getLogger(__name__)

#: Keys under this prefix hold the store's own bookkeeping, never documents.
INTERNAL_KEY_PREFIX = "_engine::"
SEQUENCE_KEY = f"{INTERNAL_KEY_PREFIX}seq"

_SEQ = "_seq"
_DELETED = "_deleted"
_DEFAULT_TIMEOUT_S = 10.0
_POLL_INTERVAL_S = 0.5


class ReplicatedByXdcr(StoreError):
    """The link-based replica operations do not apply: XDCR replicates Couchbase."""

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"{operation} is not available with the Couchbase store: XDCR replicates the "
            "bucket (python -m app couchbase xdcr), so the link-based replica sync is off"
        )


# --------------------------------------------------------------------------- URL


@dataclass(frozen=True, slots=True)
class CouchbaseConfig:
    """Where and how to reach the collection, parsed from the database URL."""

    connection_string: str
    username: str
    password: str = field(repr=False)
    bucket: str
    scope: str = "_default"
    collection: str = "_default"
    timeout_s: float = _DEFAULT_TIMEOUT_S

    @classmethod
    def from_url(cls, url: str) -> CouchbaseConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("couchbase", "couchbases"):
            raise ValueError(f"not a Couchbase URL (couchbase:// or couchbases://): {url!r}")
        credentials, _, hosts = parts.netloc.rpartition("@")
        username, has_password, password = credentials.partition(":")
        if not (username and has_password):
            raise ValueError("the Couchbase URL needs credentials: couchbase://USER:PASSWORD@HOST/")
        if not hosts:
            raise ValueError("the Couchbase URL names no host")
        bucket = unquote(parts.path.strip("/"))
        if not bucket or "/" in bucket:
            raise ValueError("the Couchbase URL path must be the bucket name alone: /BUCKET")
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        scope = options.pop("scope", "") or "_default"
        collection = options.pop("collection", "") or "_default"
        timeout_s = _positive_seconds(options.pop("timeout", str(_DEFAULT_TIMEOUT_S)))
        connection_string = f"{parts.scheme}://{hosts}"
        if options:
            connection_string += f"?{urlencode(options)}"
        return cls(
            connection_string=connection_string,
            username=unquote(username),
            password=unquote(password),
            bucket=bucket,
            scope=scope,
            collection=collection,
            timeout_s=timeout_s,
        )

    @property
    def keyspace(self) -> str:
        """The collection's full SQL++ name."""
        return ".".join(quote_identifier(n) for n in (self.bucket, self.scope, self.collection))


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"timeout must be a number of seconds, not {text!r}") from None
    if not value > 0:
        raise ValueError(f"timeout must be positive, not {text!r}")
    return value


# ----------------------------------------------------------------------- SQL++


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


_LIVE = f"{_DELETED} IS MISSING"


def index_statements(keyspace: str) -> list[str]:
    """Idempotent index definitions: by type, by sequence, and per indexed field.

    The field indexes are partial (one type each) array indexes over ``TOARRAY``, so
    one definition serves scalar fields and list fields alike.
    """
    statements = [
        f"CREATE INDEX {_index_name('type')} IF NOT EXISTS "
        f"ON {keyspace}(type, META().id) WHERE {_LIVE}",
        f"CREATE INDEX {_index_name('seq')} IF NOT EXISTS ON {keyspace}({_SEQ}, type)",
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
        f"WHERE d.{_SEQ} > $since AND d.type NOT IN $hidden ORDER BY d.{_SEQ} LIMIT $limit"
    )


def changes_parameters(since: int, limit: int) -> dict[str, object]:
    return {"since": since, "hidden": sorted(MASTER_ONLY_TYPES), "limit": limit + 1}


# ------------------------------------------------------------ stored documents


def _user_fields(data: Mapping[str, Any]) -> JsonObject:
    """``data`` without the envelope (id, type, version) and without our own fields."""
    return {k: v for k, v in document_body(data).items() if k not in (_SEQ, _DELETED)}


def encode_document(doc_type: str, body: Mapping[str, Any], seq: int) -> JsonObject:
    """What is stored for a live document: its body, its type and its sequence."""
    return {**_user_fields(body), "type": doc_type, _SEQ: seq}


def encode_tombstone(doc_type: str, seq: int) -> JsonObject:
    return {"type": doc_type, _DELETED: True, _SEQ: seq}


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
        return int(self.stored.get(_SEQ, 0))

    @property
    def deleted(self) -> bool:
        return bool(self.stored.get(_DELETED, False))

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


def _count(rows: Sequence[object]) -> int:
    """The number a ``SELECT RAW COUNT(*)`` returned."""
    if len(rows) != 1 or not isinstance(rows[0], int):
        raise StoreError(f"unexpected count from Couchbase: {rows!r}")
    return rows[0]


# ------------------------------------------------------------------------- SDK


@dataclass(frozen=True, slots=True)
class _Sdk:
    cluster: ModuleType
    auth: ModuleType
    options: ModuleType
    exceptions: ModuleType
    n1ql: ModuleType
    diagnostics: ModuleType


@functools.cache
def _load_sdk() -> _Sdk:
    names = (
        "acouchbase.cluster",
        "couchbase.auth",
        "couchbase.options",
        "couchbase.exceptions",
        "couchbase.n1ql",
        "couchbase.diagnostics",
    )
    try:
        return _Sdk(*(importlib.import_module(name) for name in names))
    except ImportError as exc:
        raise StoreUnavailable(
            "the Couchbase SDK is not installed: pip install 'engine-ha[couchbase]'"
        ) from exc


class _CasMismatch(Exception):
    """The document changed (or vanished) between our read and our write."""


@contextlib.contextmanager
def _translated_errors(sdk: _Sdk) -> Iterator[None]:
    """Turn SDK failures into store errors: outages become :class:`StoreUnavailable`."""
    errors = sdk.exceptions
    outage = (
        errors.TimeoutException,
        errors.AmbiguousTimeoutException,
        errors.UnAmbiguousTimeoutException,
        errors.ServiceUnavailableException,
        errors.TemporaryFailException,
        errors.RequestCanceledException,
        errors.MissingConnectionException,
        errors.AuthenticationException,
        errors.BucketNotFoundException,
    )
    try:
        yield
    except outage as exc:
        raise StoreUnavailable(f"Couchbase is unavailable: {_describe(exc)}") from exc
    except errors.CouchbaseException as exc:
        raise StoreError(f"Couchbase failed: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    message = str(getattr(exc, "message", None) or "").strip("'\"") or repr(exc)
    return f"{type(exc).__name__}: {message}"


class _Collection:
    """Typed KV access to one collection; SDK results and errors stay in here."""

    def __init__(self, sdk: _Sdk, collection: Any) -> None:
        self._sdk = sdk
        self._collection = collection

    async def get(self, key: str) -> StoredRow | None:
        with _translated_errors(self._sdk):
            try:
                result = await self._collection.get(key)
            except self._sdk.exceptions.DocumentNotFoundException:
                return None
        return StoredRow(key, int(result.cas), dict(result.content_as[dict]))

    async def insert(self, key: str, value: JsonObject) -> int:
        with _translated_errors(self._sdk):
            try:
                result = await self._collection.insert(key, value)
            except self._sdk.exceptions.DocumentExistsException:
                raise DocumentExists(key) from None
        return int(result.cas)

    async def replace(self, key: str, value: JsonObject, *, cas: int) -> int:
        options = self._sdk.options.ReplaceOptions(cas=cas)
        errors = self._sdk.exceptions
        with _translated_errors(self._sdk):
            try:
                result = await self._collection.replace(key, value, options)
            except (errors.CasMismatchException, errors.DocumentNotFoundException):
                raise _CasMismatch(key) from None
        return int(result.cas)

    async def upsert(self, key: str, value: JsonObject) -> int:
        with _translated_errors(self._sdk):
            result = await self._collection.upsert(key, value)
        return int(result.cas)

    async def increment(self, key: str, delta: int) -> int:
        """Add ``delta`` to a counter that starts at 0; return the new value."""
        options = self._sdk.options
        increment = options.IncrementOptions(
            delta=options.DeltaValue(delta), initial=options.SignedInt64(delta)
        )
        with _translated_errors(self._sdk):
            result = await self._collection.binary().increment(key, increment)
        return int(result.content)

    async def counter(self, key: str) -> int:
        """A counter's value (0 before its first increment)."""
        with _translated_errors(self._sdk):
            try:
                result = await self._collection.get(key)
            except self._sdk.exceptions.DocumentNotFoundException:
                return 0
        return int(result.content_as[int])


class _Queries:
    """Typed SQL++ access; every read waits for the indexes to hold earlier writes."""

    def __init__(self, sdk: _Sdk, cluster: Any) -> None:
        self._sdk = sdk
        self._cluster = cluster

    async def rows(self, statement: str, parameters: Mapping[str, object]) -> list[object]:
        options = self._sdk.options.QueryOptions(
            named_parameters=dict(parameters),
            scan_consistency=self._sdk.n1ql.QueryScanConsistency.REQUEST_PLUS,
        )
        with _translated_errors(self._sdk):
            return [row async for row in self._cluster.query(statement, options).rows()]

    async def create_index(self, statement: str) -> None:
        exists = self._sdk.exceptions.QueryIndexAlreadyExistsException
        # Another server may create the index between our check and our create.
        with _translated_errors(self._sdk), contextlib.suppress(exists):
            await self._cluster.query(statement).execute()


@dataclass(frozen=True, slots=True)
class _Connection:
    cluster: Any
    kv: _Collection
    queries: _Queries


async def _connect(config: CouchbaseConfig) -> _Connection:
    sdk = _load_sdk()
    timeout = timedelta(seconds=config.timeout_s)
    options = sdk.options.ClusterOptions(
        sdk.auth.PasswordAuthenticator(config.username, config.password),
        timeout_options=sdk.options.ClusterTimeoutOptions(
            bootstrap_timeout=timeout,
            connect_timeout=timeout,
            kv_timeout=timeout,
            query_timeout=timeout,
            management_timeout=timeout,
        ),
    )
    services = sdk.diagnostics.ServiceType
    ready = sdk.options.WaitUntilReadyOptions(service_types=[services.KeyValue, services.Query])
    with _translated_errors(sdk):
        cluster = await sdk.cluster.Cluster.connect(config.connection_string, options)
        bucket = cluster.bucket(config.bucket)
        await bucket.on_connect()
        await cluster.wait_until_ready(timeout, ready)
    collection = bucket.scope(config.scope).collection(config.collection)
    return _Connection(cluster, _Collection(sdk, collection), _Queries(sdk, cluster))


# ----------------------------------------------------------------------- store


@dataclass(slots=True)
class _Session:
    """What exists while the store is open."""

    connection: _Connection
    notifier: SequenceNotifier
    published: int
    poller: asyncio.Task[None] | None = None

    def publish(self, seq: int) -> None:
        if seq > self.published:
            self.published = seq
            self.notifier.publish(seq)


class CouchbaseStore:
    """The :class:`~app.store.base.Store` on a Couchbase collection (see the module doc)."""

    def __init__(self, config: CouchbaseConfig, *, poll_interval: float = _POLL_INTERVAL_S):
        self.config = config
        self._poll_interval = poll_interval
        self._session: _Session | None = None
        self._write_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str) -> CouchbaseStore:
        return cls(CouchbaseConfig.from_url(url))

    # --- lifecycle ----------------------------------------------------------------

    async def open(self) -> None:
        if self._session is not None:
            return
        connection = await _connect(self.config)
        try:
            for statement in index_statements(self.config.keyspace):
                await connection.queries.create_index(statement)
            newest = await connection.kv.counter(SEQUENCE_KEY)
        except BaseException:
            await _close_quietly(connection)
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
        await _close_quietly(session.connection)

    @property
    def _open(self) -> _Session:
        if self._session is None:
            raise StoreUnavailable("the Couchbase store is not open")
        return self._session

    # --- reads --------------------------------------------------------------------

    async def get(self, doc_id: str) -> Document:
        row = await self._open.connection.kv.get(doc_id)
        if row is None:
            raise DocumentNotFound(doc_id)
        return row.document()

    async def get_many(self, doc_ids: Sequence[str]) -> dict[str, Document]:
        kv = self._open.connection.kv
        rows = await asyncio.gather(*(kv.get(doc_id) for doc_id in dict.fromkeys(doc_ids)))
        return {row.id: row.document() for row in rows if row is not None and not row.deleted}

    async def find(
        self,
        doc_type: str,
        *,
        where: Mapping[str, str] | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> Page:
        where = where or {}
        require_indexed(doc_type, where)
        require_positive("limit", limit)
        query = FindQuery(self.config.keyspace, doc_type, where, after, limit)
        queries = self._open.connection.queries
        counted, found = await asyncio.gather(
            queries.rows(query.count_statement(), query.count_parameters()),
            queries.rows(query.page_statement(), query.page_parameters()),
        )
        rows = [StoredRow.from_query(row) for row in found]
        items = [row.document() for row in rows[:limit]]
        more = limit is not None and len(rows) > limit
        return Page(items=items, total=_count(counted), next_after=items[-1].id if more else None)

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
        row = await self._open.connection.kv.get(doc_id)
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
        refuse_repeats([doc_id for doc_id, _, _ in docs])
        existing = await self.get_many([doc_id for doc_id, _, _ in docs])
        if existing:
            raise DocumentExists(next(iter(existing)))
        written: list[StoredRow] = []
        async with self._sequenced(len(docs)) as seqs:
            try:
                for (doc_id, doc_type, body), seq in zip(docs, seqs, strict=True):
                    stored = encode_document(doc_type, body, seq)
                    written.append(StoredRow(doc_id, await self._create(doc_id, stored), stored))
            except Exception:
                await self._withdraw(written)
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
        except _CasMismatch:
            raise DocumentExists(doc_id) from None

    async def _withdraw(self, rows: Sequence[StoredRow]) -> None:
        """Delete what a failed ``insert_many`` wrote, unless someone changed it since."""
        session = self._open
        try:
            for row in rows:
                seq = await session.connection.kv.increment(SEQUENCE_KEY, 1)
                with contextlib.suppress(_CasMismatch):
                    tombstone = encode_tombstone(row.type, seq)
                    await session.connection.kv.replace(row.id, tombstone, cas=row.cas)
                session.publish(seq)
        except StoreError as exc:  # the caller hears of the first failure, not of this one
            log.warning("could not withdraw a partial insert of %d documents: %s", len(rows), exc)

    async def replace(
        self, doc_id: str, body: JsonObject, *, expected_version: str | None = None
    ) -> Document:
        while True:
            current = await self._live(doc_id, expected_version)
            async with self._sequenced() as [seq]:
                stored = encode_document(current.type, body, seq)
                try:
                    cas = await self._open.connection.kv.replace(doc_id, stored, cas=current.cas)
                except _CasMismatch:
                    continue  # read again: a conflict or a deletion is reported from there
            return StoredRow(doc_id, cas, stored).document()

    async def upsert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        async with self._sequenced() as [seq]:
            stored = encode_document(doc_type, body, seq)
            cas = await self._open.connection.kv.upsert(doc_id, stored)
        return StoredRow(doc_id, cas, stored).document()

    async def delete(self, doc_id: str, *, expected_version: str | None = None) -> None:
        while True:
            current = await self._live(doc_id, expected_version)
            async with self._sequenced() as [seq]:
                tombstone = encode_tombstone(current.type, seq)
                try:
                    await self._open.connection.kv.replace(doc_id, tombstone, cas=current.cas)
                except _CasMismatch:
                    continue
            return

    # --- replication is XDCR's job ------------------------------------------------

    async def apply_changes(self, changes: Sequence[Change], *, source_seq: int) -> None:
        raise ReplicatedByXdcr("apply_changes")

    async def replica_seq(self) -> int:
        raise ReplicatedByXdcr("replica_seq")

    async def reset_replica(self) -> None:
        raise ReplicatedByXdcr("reset_replica")


async def _close_quietly(connection: _Connection) -> None:
    """Close the cluster connection; a lost cluster must not make closing fail."""
    try:
        await connection.cluster.close()
    except Exception as exc:
        log.warning("closing the Couchbase connection: %s", exc)
