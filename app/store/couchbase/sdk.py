"""The Couchbase SDK behind the few calls the store makes, and its errors mapped to ours.

The SDK is imported on first use only, so the store loads without it. The store
reaches the SDK through one seam: a ``Cluster.connect`` (:data:`ClusterConnect`) and
the objects it returns, of which the store uses only what the protocols below name.
Everything above the seam, the SDK's own option objects and exception classes
included, is the same whether the cluster is real or a stand-in (the tests drive the
store through one that behaves like the SDK: ``tests/support/couchbase_standin.py``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import ModuleType
from typing import Any, Protocol

from app.store.base import DocumentExists, JsonObject, StoreError, StoreUnavailable
from app.store.couchbase.codec import StoredRow
from app.store.couchbase.config import CouchbaseConfig

log = logging.getLogger(__name__)

# --------------------------------------------------------------- the seam


class GetResult(Protocol):
    @property
    def cas(self) -> int | None: ...
    @property
    def content_as(self) -> Any: ...


class MutationResult(Protocol):
    @property
    def cas(self) -> int | None: ...


class CounterResult(Protocol):
    @property
    def content(self) -> int | None: ...


class SdkBinaryCollection(Protocol):
    def increment(self, key: str, *options: Any) -> Awaitable[CounterResult]: ...


class SdkCollection(Protocol):
    def get(self, key: str, *options: Any) -> Awaitable[GetResult]: ...
    def insert(self, key: str, value: JsonObject, *options: Any) -> Awaitable[MutationResult]: ...
    def replace(self, key: str, value: JsonObject, *options: Any) -> Awaitable[MutationResult]: ...
    def upsert(self, key: str, value: JsonObject, *options: Any) -> Awaitable[MutationResult]: ...
    def binary(self) -> SdkBinaryCollection: ...


class SdkQueryResult(Protocol):
    def rows(self) -> AsyncIterator[object]: ...
    def execute(self) -> Awaitable[object]: ...


class SdkScope(Protocol):
    def collection(self, name: str) -> SdkCollection: ...


class SdkBucket(Protocol):
    def on_connect(self) -> Awaitable[None]: ...
    def scope(self, name: str) -> SdkScope: ...


class SdkCluster(Protocol):
    def bucket(self, name: str) -> SdkBucket: ...
    def wait_until_ready(self, timeout: timedelta, *options: Any) -> Awaitable[None]: ...
    def query(self, statement: str, *options: Any) -> SdkQueryResult: ...
    def close(self) -> Awaitable[None]: ...


#: ``acouchbase.cluster.Cluster.connect``, or a stand-in for it.
ClusterConnect = Callable[[str, Any], Awaitable[SdkCluster]]


# ------------------------------------------------------------ the modules


@dataclass(frozen=True, slots=True)
class Sdk:
    """The SDK modules the store uses: options, exceptions and the connect call."""

    cluster: ModuleType
    auth: ModuleType
    options: ModuleType
    exceptions: ModuleType
    n1ql: ModuleType
    diagnostics: ModuleType


@functools.cache
def load_sdk() -> Sdk:
    names = (
        "acouchbase.cluster",
        "couchbase.auth",
        "couchbase.options",
        "couchbase.exceptions",
        "couchbase.n1ql",
        "couchbase.diagnostics",
    )
    try:
        return Sdk(*(importlib.import_module(name) for name in names))
    except ImportError as exc:
        raise StoreUnavailable(
            "the Couchbase SDK is not installed: pip install 'engine-ha[couchbase]'"
        ) from exc


# ------------------------------------------------------------ the errors


class CasMismatch(Exception):
    """The document changed (or vanished) between our read and our write."""


@contextlib.contextmanager
def translated_errors(sdk: Sdk) -> Iterator[None]:
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


# ------------------------------------------------------------ the adapters


class KeyValue:
    """Typed KV access to the collection; CAS conflicts surface as :class:`CasMismatch`."""

    def __init__(self, sdk: Sdk, collection: SdkCollection) -> None:
        self._sdk = sdk
        self._collection = collection

    async def get(self, key: str) -> StoredRow | None:
        with translated_errors(self._sdk):
            try:
                result = await self._collection.get(key)
            except self._sdk.exceptions.DocumentNotFoundException:
                return None
        try:
            content = result.content_as[dict]
        except (TypeError, ValueError):
            raise StoreError(f"{key!r} in the bucket is not a JSON object") from None
        return StoredRow(key, int(result.cas or 0), content)

    async def insert(self, key: str, value: JsonObject) -> int:
        with translated_errors(self._sdk):
            try:
                result = await self._collection.insert(key, value)
            except self._sdk.exceptions.DocumentExistsException:
                raise DocumentExists(key) from None
        return int(result.cas or 0)

    async def replace(self, key: str, value: JsonObject, *, cas: int) -> int:
        options = self._sdk.options.ReplaceOptions(cas=cas)
        errors = self._sdk.exceptions
        with translated_errors(self._sdk):
            try:
                result = await self._collection.replace(key, value, options)
            except (errors.CasMismatchException, errors.DocumentNotFoundException):
                raise CasMismatch(key) from None
        return int(result.cas or 0)

    async def upsert(self, key: str, value: JsonObject) -> int:
        with translated_errors(self._sdk):
            result = await self._collection.upsert(key, value)
        return int(result.cas or 0)

    async def increment(self, key: str, delta: int) -> int:
        """Add ``delta`` to a counter that starts at 0; return the new value."""
        options = self._sdk.options
        increment = options.IncrementOptions(
            delta=options.DeltaValue(delta), initial=options.SignedInt64(delta)
        )
        with translated_errors(self._sdk):
            result = await self._collection.binary().increment(key, increment)
        return int(result.content or 0)

    async def counter(self, key: str) -> int:
        """A counter's value (0 before its first increment)."""
        with translated_errors(self._sdk):
            try:
                result = await self._collection.get(key)
            except self._sdk.exceptions.DocumentNotFoundException:
                return 0
        return int(result.content_as[int])


class Queries:
    """Typed SQL++ access; every read waits for the indexes to hold earlier writes."""

    def __init__(self, sdk: Sdk, cluster: SdkCluster) -> None:
        self._sdk = sdk
        self._cluster = cluster

    async def rows(self, statement: str, parameters: Mapping[str, object]) -> list[object]:
        options = self._sdk.options.QueryOptions(
            named_parameters=dict(parameters),
            scan_consistency=self._sdk.n1ql.QueryScanConsistency.REQUEST_PLUS,
        )
        with translated_errors(self._sdk):
            return [row async for row in self._cluster.query(statement, options).rows()]

    async def create_index(self, statement: str) -> None:
        exists = self._sdk.exceptions.QueryIndexAlreadyExistsException
        # Another server may create the index between our check and our create.
        with translated_errors(self._sdk), contextlib.suppress(exists):
            await self._cluster.query(statement).execute()


@dataclass(frozen=True, slots=True)
class Connection:
    cluster: SdkCluster
    kv: KeyValue
    queries: Queries

    async def close(self) -> None:
        """Close the cluster connection; a lost cluster must not make closing fail.

        Raises nothing: a failure is logged.
        """
        try:
            await self.cluster.close()
        except Exception as exc:
            log.warning("closing the Couchbase connection: %s", exc)


async def connect(config: CouchbaseConfig, cluster_connect: ClusterConnect | None) -> Connection:
    """Connect to the collection and wait until KV and query answer.

    ``cluster_connect`` defaults to the SDK's ``Cluster.connect``. Raises
    :class:`StoreUnavailable` when the cluster cannot be reached or refuses us.
    """
    sdk = load_sdk()
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
    with translated_errors(sdk):
        cluster = await (cluster_connect or sdk.cluster.Cluster.connect)(
            config.connection_string, options
        )
        bucket = cluster.bucket(config.bucket)
        await bucket.on_connect()
        await cluster.wait_until_ready(timeout, ready)
    collection = bucket.scope(config.scope).collection(config.collection)
    return Connection(cluster, KeyValue(sdk, collection), Queries(sdk, cluster))
