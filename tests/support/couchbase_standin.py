"""An in-memory Couchbase cluster that behaves like the SDK at the store's seam.

``StandInCluster.connect`` takes the place of ``acouchbase.cluster.Cluster.connect``
(``CouchbaseStore(config, cluster_connect=cluster.connect)``); everything above it is
the store's own code with the SDK's own option objects. Like the SDK and the server:

- results are the SDK's classes (``GetResult``, ``MutationResult``, ``CounterResult``)
  decoded by the SDK's ``JSONTranscoder`` from values stored encoded, as the server
  holds them; errors are the SDK's exception classes (``couchbase.exceptions``);
- every write gives the document a new 64-bit CAS; ``replace`` with a CAS other than
  the current one raises ``CasMismatchException``, of a missing key
  ``DocumentNotFoundException``; ``insert`` of an existing key ``DocumentExistsException``;
- ``binary().increment`` creates a missing counter with ``initial`` and stores it as
  ASCII digits (no JSON flags), as the server does;
- credentials and the bucket are checked at connect; KV calls on a scope or collection
  that does not exist time out, SQL++ on it raises ``KeyspaceNotFoundException``;
- every call yields to the event loop first, as a network round trip would;
- SQL++: the statement shapes ``app/store/couchbase/sql.py`` builds are parsed from
  their text (a small grammar of exactly those shapes, so a changed statement fails
  here until the stand-in learns it) and evaluated over the documents with their
  named parameters; any other text raises ``ParsingFailedException``. A query without
  ``REQUEST_PLUS`` reads the index as the last ``REQUEST_PLUS`` query left it (index
  lag), so a lookup that forgets the consistency misses recent writes.

Faults: :meth:`StandInCluster.fail` makes the next calls of an operation raise a given
SDK exception (before the write, or after it, an ambiguous timeout); ``down`` makes
every call time out as an unreachable cluster does.

Not modelled (a real cluster is needed, see the README): query planning and index
coverage, durability, expiry, rebalance and failover, XDCR, TLS.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from couchbase import exceptions as sdk_errors
from couchbase.n1ql import QueryScanConsistency
from couchbase.result import CounterResult, GetResult, MutationResult
from couchbase.transcoder import JSONTranscoder

Keyspace = tuple[str, str, str]


@dataclass(slots=True)
class _Item:
    """A value as the server holds it: encoded bytes, format flags and CAS."""

    cas: int
    value: bytes
    flags: int


@dataclass(frozen=True, slots=True)
class _Raw:
    """What the SDK's result classes read from the C++ core."""

    raw_result: dict[str, Any]


@dataclass(slots=True)
class _Fault:
    error: sdk_errors.CouchbaseException
    after_write: bool


def _options(options: Iterable[Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The SDK's option blocks are dicts; keyword arguments override them, as in the SDK."""
    merged: dict[str, Any] = {}
    for block in options:
        merged.update(dict(block))
    merged.update(overrides)
    return merged


def _unquote(identifier: str) -> str:
    return identifier[1:-1].replace("``", "`")


class StandInCluster:
    """One in-memory cluster: its users, keyspaces, documents, indexes and faults."""

    def __init__(
        self,
        *,
        username: str = "engine",
        password: str = "s3cret",
        bucket: str = "engine",
        collections: Iterable[tuple[str, str]] = (("_default", "_default"),),
    ) -> None:
        self.username = username
        self.password = password
        self.data: dict[Keyspace, dict[str, _Item]] = {
            (bucket, scope, collection): {} for scope, collection in collections
        }
        self.buckets = {bucket}
        self.indexes: dict[Keyspace, set[str]] = {keyspace: set() for keyspace in self.data}
        self.queries: list[tuple[str, dict[str, Any]]] = []
        self.down = False
        self.refused = 0
        self.connections = 0
        self._indexed: dict[Keyspace, dict[str, _Item]] = {ks: {} for ks in self.data}
        self._faults: dict[str, list[_Fault | None]] = {}
        self._clock = 0
        self._transcoder = JSONTranscoder()

    # --- what tests use -----------------------------------------------------------

    async def connect(self, connection_string: str, options: Any) -> _Connection:
        """``Cluster.connect``: checks the credentials, as bootstrapping does."""
        await self.call("connect")
        if not connection_string.startswith(("couchbase://", "couchbases://")):
            raise sdk_errors.InvalidArgumentException(message="bad connection string")
        credentials = _options([options], {})["authenticator"].as_dict()
        if (credentials["username"], credentials["password"]) != (self.username, self.password):
            raise sdk_errors.AuthenticationException(message="invalid credentials")
        self.connections += 1
        return _Connection(self)

    def fail(
        self,
        operation: str,
        error: sdk_errors.CouchbaseException,
        *,
        times: int = 1,
        skip: int = 0,
        after_write: bool = False,
    ) -> None:
        """After ``skip`` calls that succeed, ``times`` calls of ``operation`` raise ``error``.

        With ``after_write`` the write happens before the error (an ambiguous timeout).
        Operations: connect, on_connect, wait_until_ready, get, insert, replace, upsert,
        increment, query, close.
        """
        pending = self._faults.setdefault(operation, [])
        pending.extend([None] * skip)
        pending.extend(_Fault(error, after_write) for _ in range(times))

    def value(self, key: str) -> Any:
        """A stored value in the first keyspace, decoded (None when missing)."""
        item = self.data[next(iter(self.data))].get(key)
        return None if item is None else self._decode(item)

    # --- the server ---------------------------------------------------------------

    async def call(self, operation: str) -> _Fault | None:
        """One round trip: raise an outage or a fault due before; return one due after."""
        await asyncio.sleep(0)
        if self.down:
            self.refused += 1
            raise sdk_errors.UnAmbiguousTimeoutException(
                message=f"{operation}: the cluster does not answer"
            )
        pending = self._faults.get(operation)
        if not pending:
            return None
        fault = pending.pop(0)
        if fault is None or fault.after_write:
            return fault
        raise fault.error

    def next_cas(self) -> int:
        """A new CAS for every write: nanoseconds since the epoch, never repeated."""
        self._clock = max(self._clock + 1, time.time_ns())
        return self._clock

    def encode(self, value: Any) -> _Item:
        encoded, flags = self._transcoder.encode_value(value)
        return _Item(self.next_cas(), encoded, flags)

    def _decode(self, item: _Item) -> Any:
        return self._transcoder.decode_value(item.value, item.flags)

    def get_result(self, key: str, item: _Item) -> Any:
        raw = _Raw({"cas": item.cas, "value": item.value, "flags": item.flags, "key": key})
        return GetResult(raw, transcoder=self._transcoder, key=key)

    def collection(self, keyspace: Keyspace) -> dict[str, _Item]:
        """A keyspace's documents; KV calls on a missing one retry until they time out."""
        try:
            return self.data[keyspace]
        except KeyError:
            raise sdk_errors.UnAmbiguousTimeoutException(
                message=f"collection {'.'.join(keyspace)} not found (retried until timeout)"
            ) from None

    # --- SQL++ ----------------------------------------------------------------------

    def query(self, statement: str, options: Mapping[str, Any]) -> list[object]:
        parameters = dict(options.get("named_parameters") or {})
        self.queries.append((statement, parameters))
        if match := _CREATE_INDEX.fullmatch(statement):
            keyspace = self._keyspace(match["keyspace"])
            name = _unquote(match["name"])
            if name in self.indexes[keyspace] and not match["if_not_exists"]:
                raise sdk_errors.QueryIndexAlreadyExistsException(message=f"{name} exists")
            self.indexes[keyspace].add(name)
            return []
        if match := _SELECT.fullmatch(statement):
            keyspace = self._keyspace(match["keyspace"])
            if options.get("scan_consistency") == QueryScanConsistency.REQUEST_PLUS:
                self._indexed[keyspace] = dict(self.data[keyspace])
            return self._select(match, self._indexed[keyspace], parameters)
        raise sdk_errors.ParsingFailedException(message=f"syntax error: {statement}")

    def _keyspace(self, text: str) -> Keyspace:
        parts = _IDENTIFIER.findall(text)
        keyspace = (_unquote(parts[0]), _unquote(parts[1]), _unquote(parts[2]))
        if keyspace not in self.data:
            raise sdk_errors.KeyspaceNotFoundException(message=f"keyspace {text} not found")
        return keyspace

    def _select(
        self, match: re.Match[str], documents: Mapping[str, _Item], parameters: dict[str, Any]
    ) -> list[object]:
        condition = _parse_conditions(match["where"], parameters)
        rows = [
            (key, item, value)
            for key, item in documents.items()
            if condition(key, value := self._decode(item))
        ]
        if match["count"]:
            return [len(rows)]
        order = match["order"]
        if order is None:  # no order asked for: none is promised
            rows.reverse()
        elif order == "META(d).id":
            rows.sort(key=lambda row: row[0])
        else:
            rows.sort(key=lambda row: _sort_key(_field(row[2], order)))
        if match["limit"]:
            rows = rows[: int(_parameter(parameters, match["limit"]))]
        return [{"id": key, "cas": item.cas, "doc": value} for key, item, value in rows]


# --- the SDK objects the store holds -----------------------------------------------


class _Connection:
    """``AsyncCluster``: buckets, readiness, SQL++ and close."""

    def __init__(self, server: StandInCluster) -> None:
        self._server = server

    def bucket(self, name: str) -> _Bucket:
        return _Bucket(self._server, name)

    async def wait_until_ready(self, timeout: timedelta, *options: Any, **kwargs: Any) -> None:
        await self._server.call("wait_until_ready")

    def query(self, statement: str, *options: Any, **kwargs: Any) -> _QueryResult:
        return _QueryResult(self._server, statement, _options(options, kwargs))

    async def close(self) -> None:
        await self._server.call("close")
        self._server.connections -= 1


class _QueryResult:
    """``QueryResult``: runs when its rows are read, as the SDK's does."""

    def __init__(self, server: StandInCluster, statement: str, options: dict[str, Any]) -> None:
        self._server = server
        self._statement = statement
        self._options = options

    async def _run(self) -> list[object]:
        await self._server.call("query")
        return self._server.query(self._statement, self._options)

    async def rows(self) -> AsyncIterator[object]:
        for row in await self._run():
            yield row

    async def execute(self) -> list[object]:
        return await self._run()


class _Bucket:
    def __init__(self, server: StandInCluster, name: str) -> None:
        self._server = server
        self._name = name

    async def on_connect(self) -> None:
        await self._server.call("on_connect")
        if self._name not in self._server.buckets:
            raise sdk_errors.BucketNotFoundException(message=f"bucket {self._name} not found")

    def scope(self, name: str) -> _Scope:
        return _Scope(self._server, self._name, name)


class _Scope:
    def __init__(self, server: StandInCluster, bucket: str, name: str) -> None:
        self._server = server
        self._bucket = bucket
        self._name = name

    def collection(self, name: str) -> _Collection:
        return _Collection(self._server, (self._bucket, self._name, name))


class _Collection:
    """``AsyncCollection``: the KV calls the store makes, with CAS."""

    def __init__(self, server: StandInCluster, keyspace: Keyspace) -> None:
        self._server = server
        self._keyspace = keyspace

    async def get(self, key: str, *options: Any, **kwargs: Any) -> Any:
        await self._server.call("get")
        item = self._server.collection(self._keyspace).get(key)
        if item is None:
            raise sdk_errors.DocumentNotFoundException(message=f"{key} not found")
        return self._server.get_result(key, item)

    async def insert(self, key: str, value: Any, *options: Any, **kwargs: Any) -> Any:
        fault = await self._server.call("insert")
        documents = self._server.collection(self._keyspace)
        if key in documents:
            raise sdk_errors.DocumentExistsException(message=f"{key} exists")
        return self._write(documents, key, value, fault)

    async def replace(self, key: str, value: Any, *options: Any, **kwargs: Any) -> Any:
        fault = await self._server.call("replace")
        documents = self._server.collection(self._keyspace)
        current = documents.get(key)
        if current is None:
            raise sdk_errors.DocumentNotFoundException(message=f"{key} not found")
        cas = _options(options, kwargs).get("cas") or 0
        if cas and cas != current.cas:
            raise sdk_errors.CasMismatchException(message=f"{key}: CAS mismatch")
        return self._write(documents, key, value, fault)

    async def upsert(self, key: str, value: Any, *options: Any, **kwargs: Any) -> Any:
        fault = await self._server.call("upsert")
        return self._write(self._server.collection(self._keyspace), key, value, fault)

    def binary(self) -> _BinaryCollection:
        return _BinaryCollection(self._server, self._keyspace)

    def _write(
        self, documents: dict[str, _Item], key: str, value: Any, fault: _Fault | None
    ) -> Any:
        item = self._server.encode(value)
        documents[key] = item
        if fault is not None:
            raise fault.error
        return MutationResult(_Raw({"cas": item.cas}), key=key)


class _BinaryCollection:
    def __init__(self, server: StandInCluster, keyspace: Keyspace) -> None:
        self._server = server
        self._keyspace = keyspace

    async def increment(self, key: str, *options: Any, **kwargs: Any) -> Any:
        fault = await self._server.call("increment")
        documents = self._server.collection(self._keyspace)
        chosen = _options(options, kwargs)
        delta = chosen.get("delta")
        initial = chosen.get("initial")
        current = documents.get(key)
        if current is None:
            if initial is None:
                raise sdk_errors.DocumentNotFoundException(message=f"{key} not found")
            value = initial.value
        elif current.value.isdigit():
            value = int(current.value) + (delta.value if delta is not None else 1)
        else:
            raise sdk_errors.DeltaInvalidException(message=f"{key} is not a counter")
        item = _Item(self._server.next_cas(), str(value).encode(), 0)
        documents[key] = item
        if fault is not None:
            raise fault.error
        return CounterResult(_Raw({"cas": item.cas, "content": value}), key=key)


# --- the SQL++ the store writes ------------------------------------------------------

_IDENT = r"`(?:[^`]|``)+`"
_IDENTIFIER = re.compile(_IDENT)
_KEYSPACE = rf"(?P<keyspace>{_IDENT}\.{_IDENT}\.{_IDENT})"
_CREATE_INDEX = re.compile(
    rf"CREATE INDEX (?P<name>{_IDENT})(?P<if_not_exists> IF NOT EXISTS)? ON {_KEYSPACE}\(.+\)"
    r"(?: WHERE .+)?"
)
_SELECT = re.compile(
    r"SELECT (?:(?P<count>RAW COUNT\(\*\))|META\(d\)\.id AS id, META\(d\)\.cas AS cas, d AS doc)"
    rf" FROM {_KEYSPACE} AS d WHERE (?P<where>.+?)"
    r"(?: ORDER BY (?P<order>META\(d\)\.id|d\.\w+))?(?: LIMIT \$(?P<limit>\w+))?"
)
_FIELD = rf"d\.(?P<field>\w+|{_IDENT})"
_CONDITIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"{_FIELD} = (?P<literal>\"(?:[^\"\\]|\\.)*\")"), "equals"),
    (re.compile(rf"{_FIELD} IS MISSING"), "missing"),
    (re.compile(rf"{_FIELD} > \$(?P<param>\w+)"), "above"),
    (re.compile(rf"{_FIELD} NOT IN \$(?P<param>\w+)"), "not_in"),
    (re.compile(r"META\(d\)\.id > \$(?P<param>\w+)"), "id_above"),
    (
        re.compile(rf"ANY v IN TOARRAY\({_FIELD}\) SATISFIES v = \$(?P<param>\w+) END"),
        "any_equals",
    ),
]

_MISSING = object()
Condition = Callable[[str, Any], bool]


def _field(document: Any, name: str) -> Any:
    name = name.removeprefix("d.")
    if name.startswith("`"):
        name = _unquote(name)
    return document.get(name, _MISSING) if isinstance(document, dict) else _MISSING


def _parameter(parameters: Mapping[str, Any], name: str) -> Any:
    if name not in parameters:
        raise sdk_errors.CouchbaseException(message=f"No value for named parameter ${name}")
    return parameters[name]


def _comparable(left: Any, right: Any) -> bool:
    """SQL++ compares values of one type; a missing field satisfies no comparison."""
    numbers = (int, float)
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool)
    return (isinstance(left, numbers) and isinstance(right, numbers)) or (
        isinstance(left, str) and isinstance(right, str)
    )


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, 0) if value is _MISSING else (1, value)


def _condition(kind: str, match: re.Match[str], parameters: Mapping[str, Any]) -> Condition:
    groups = match.groupdict()
    name = groups.get("field") or ""
    if kind == "equals":
        literal = json.loads(groups["literal"])
        return lambda key, doc: _field(doc, name) == literal
    if kind == "missing":
        return lambda key, doc: isinstance(doc, dict) and _field(doc, name) is _MISSING
    value = _parameter(parameters, groups["param"])
    if kind == "above":
        return lambda key, doc: _comparable(v := _field(doc, name), value) and v > value
    if kind == "not_in":
        return lambda key, doc: (v := _field(doc, name)) is not _MISSING and v not in value
    if kind == "id_above":
        return lambda key, doc: key > value

    def any_equals(key: str, doc: Any) -> bool:  # TOARRAY: a scalar is a one-element array
        found = _field(doc, name)
        elements = found if isinstance(found, list) else [found]
        return found not in (_MISSING, None) and value in elements

    return any_equals


def _parse_conditions(text: str, parameters: Mapping[str, Any]) -> Condition:
    """A conjunction of the conditions the store writes, in any order."""
    conditions: list[Condition] = []
    position = 0
    while True:
        for pattern, kind in _CONDITIONS:
            if match := pattern.match(text, position):
                conditions.append(_condition(kind, match, parameters))
                position = match.end()
                break
        else:
            raise sdk_errors.ParsingFailedException(message=f"syntax error at: {text[position:]}")
        if position == len(text):
            return lambda key, doc: all(condition(key, doc) for condition in conditions)
        if not text.startswith(" AND ", position):
            raise sdk_errors.ParsingFailedException(message=f"syntax error at: {text[position:]}")
        position += len(" AND ")
