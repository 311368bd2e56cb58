"""The Couchbase store, by layer: URL, SQL++, stored documents, the SDK seam, the store.

Database URL::

    couchbase://USER:PASSWORD@HOST[:PORT][,HOST2...]/BUCKET?scope=_default&collection=_default&timeout=10
    couchbases://...   the same over TLS

``scope`` and ``collection`` default to ``_default``; ``timeout`` (seconds, default 10)
bounds connecting, every KV operation and every query. Any other query parameter is
passed to the SDK's connection string unchanged (for example
``trust_store_path=/etc/engine/couchbase-ca.pem`` with ``couchbases://``). The user
name and password are percent-decoded. Needs Couchbase Server 7.1+ with the data and
query services, and the optional SDK extra (``pip install 'engine-ha[couchbase]'``);
the SDK is imported on first use only, so this package loads without it.

Layers, each importing only those before it:

- :mod:`.codec`: how a document, its sequence and its tombstone are stored;
- :mod:`.sql`: the SQL++ text of indexes, lookups and the change feed;
- :mod:`.config`: the database URL;
- :mod:`.sdk`: the SDK behind the few calls the store makes (the seam a stand-in
  cluster plugs into) and its exceptions mapped to store errors;
- :mod:`.store`: :class:`CouchbaseStore`, the :class:`~app.store.base.Store` itself.
"""

from __future__ import annotations

from app.store.couchbase.codec import (
    INTERNAL_KEY_PREFIX,
    SEQUENCE_KEY,
    StoredRow,
    changes_batch,
    encode_document,
    encode_tombstone,
)
from app.store.couchbase.config import CouchbaseConfig
from app.store.couchbase.sql import (
    FindQuery,
    changes_parameters,
    changes_statement,
    index_statements,
    quote_identifier,
)
from app.store.couchbase.store import CouchbaseStore, ReplicatedByXdcr

__all__ = [
    "INTERNAL_KEY_PREFIX",
    "SEQUENCE_KEY",
    "CouchbaseConfig",
    "CouchbaseStore",
    "FindQuery",
    "ReplicatedByXdcr",
    "StoredRow",
    "changes_batch",
    "changes_parameters",
    "changes_statement",
    "encode_document",
    "encode_tombstone",
    "index_statements",
    "quote_identifier",
]
