"""The etcd store, by layer: URL, the v3 JSON-gateway client, the in-memory mirror, the store.

Database URL::

    etcd://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]/PREFIX[?timeout=5]
    etcds://…/PREFIX?ca=/path/ca.pem[&cert=/path/client.pem&key=/path/client-key.pem]

Every key lives under ``/PREFIX``; several engines may share a cluster under
different prefixes. ``timeout`` (seconds, default 5) bounds each request. User name
and password (percent-decoded) authenticate with etcd's own auth; ``etcds://`` is TLS,
``ca`` the CA that signed the members' certificates, ``cert``/``key`` a client
certificate. Requests go to the first endpoint that answers.

Layers, each importing only those before it:

- :mod:`.config`: the database URL;
- :mod:`.client`: etcd's v3 API over its JSON gateway with httpx (range, txn, watch,
  leases, compaction, authentication);
- :mod:`.mirror`: the documents in memory, their indexes and the change feed (pure);
- :mod:`.store`: :class:`EtcdStore`, the :class:`~app.store.base.Store` itself, and
  the :class:`Fence` a leader makes its writes conditional with.

Imports nothing of the engine outside ``app.store``.
"""

from __future__ import annotations

from app.store.etcd.client import EtcdClient, EtcdError, EtcdUnavailable
from app.store.etcd.config import EtcdConfig
from app.store.etcd.store import EtcdStore, Fence, FenceLost

__all__ = [
    "EtcdClient",
    "EtcdConfig",
    "EtcdError",
    "EtcdStore",
    "EtcdUnavailable",
    "Fence",
    "FenceLost",
]
