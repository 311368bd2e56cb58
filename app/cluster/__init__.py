"""The masters' cluster on etcd: who leads, until when it may act, and the fence.

- :mod:`.lease`: the pure rule that tells a leader to stop acting before its lease
  could have ended (clock rates, time to stop, a frozen process);
- :mod:`.leadership`: the etcd side: campaign for the leader key under a lease, renew
  it, resign, observe the leader; the fence that makes the etcd store's writes
  conditional on the key being this term's; the epoch that grows across leaders.

Imports nothing of the engine but ``app.store`` (the etcd client and the store's
:class:`~app.store.etcd.Fence`); the masters' boot uses it, never the other way.
"""

from __future__ import annotations

from app.cluster.leadership import Elector, LeaderFence, LeaderInfo, NodeIdentity, Term
from app.cluster.lease import LeaseVerdict, LeaseView, judge, stop_margin

__all__ = [
    "Elector",
    "LeaderFence",
    "LeaderInfo",
    "LeaseVerdict",
    "LeaseView",
    "NodeIdentity",
    "Term",
    "judge",
    "stop_margin",
]
