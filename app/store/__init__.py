"""Document stores: the protocol, its errors, and the backend chosen by database URL.

The embedded SQLite store (``sqlite``), the Couchbase one (``couchbase/``, loaded
only when asked for) and the etcd one (``etcd/``) implement :class:`Store`; what only
some backends can do is a protocol of its own (:class:`ReplicaStore`: holding a
link-fed replica; :class:`EncodedFeed`: handing out the change feed as JSON text).
XDCR provisioning is ``xdcr``. Imports nothing of the engine outside ``app.store``.
"""

from __future__ import annotations

from app.store.base import (
    INDEXED_FIELDS,
    MASTER_ONLY_TYPES,
    Change,
    ChangeBatch,
    Document,
    DocumentExists,
    DocumentNotFound,
    EncodedChange,
    EncodedChangeBatch,
    EncodedFeed,
    FeedCompacted,
    JsonObject,
    Page,
    ReplicaStore,
    Store,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)
from app.store.sqlite import SqliteStore

__all__ = [
    "INDEXED_FIELDS",
    "MASTER_ONLY_TYPES",
    "Change",
    "ChangeBatch",
    "Document",
    "DocumentExists",
    "DocumentNotFound",
    "EncodedChange",
    "EncodedChangeBatch",
    "EncodedFeed",
    "FeedCompacted",
    "JsonObject",
    "Page",
    "ReplicaStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "VersionConflict",
    "open_store",
]


def open_store(url: str, *, replica: bool = False) -> Store:
    """The store for a database URL, not yet connected: ``await store.open()`` next.

    ``sqlite:///relative.db`` and ``sqlite:////absolute.db`` use the embedded store;
    ``couchbase://`` and ``couchbases://`` load the Couchbase SDK only when asked for;
    ``etcd://`` and ``etcds://`` open the etcd store (``app.store.etcd``).
    An embedded ``replica`` (an edge's) is checked as it opens and started empty when
    corrupt, to be rebuilt from the master.
    """
    scheme = url.partition("://")[0]
    if scheme == "sqlite":
        return SqliteStore.from_url(url, set_aside_if_corrupt=replica)
    if scheme in ("couchbase", "couchbases"):
        from app.store.couchbase import CouchbaseStore

        return CouchbaseStore.from_url(url)
    if scheme in ("etcd", "etcds"):
        from app.store.etcd import EtcdStore

        return EtcdStore.from_url(url)
    raise ValueError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH, "
        "couchbase://HOST/BUCKET or etcd://HOST:PORT/PREFIX"
    )
