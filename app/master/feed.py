"""The master's side of embedded replication: answering ``replica.changes``.

Batches are bounded by count and by encoded size, so a batch of large documents never
exceeds the link's frame limit (a frame too large closes the link, and the edge would
ask for the same batch again forever). A change that could not travel even alone (a
document written past the API's limits, by another backend or an older version) is
left out and named in ``skipped``, so the rest of the feed still flows.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.errors import ResyncRequired
from app.link.ops import ReplicaBatch, ReplicaChangesArgs, ReplicaDocuments, ReplicaFetchArgs
from app.services.limits import encoded_size, unshippable
from app.store.base import MASTER_ONLY_TYPES, FeedCompacted, Store

#: Largest number of changes one answer carries.
MAX_BATCH = 1000


async def replica_changes(
    store: Store, args: ReplicaChangesArgs, *, max_bytes: int
) -> ReplicaBatch:
    """One batch of the feed after ``args.since`` (``limit``, ``horizon`` as the edge asks)."""
    since, horizon = args.since, args.horizon
    limit = max(1, min(MAX_BATCH if args.limit is None else args.limit, MAX_BATCH))
    try:
        batch = await store.changes_since(since, limit=limit, horizon=horizon)
    except FeedCompacted as exc:
        raise ResyncRequired(str(exc)) from exc
    changes: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    size, last_seq = 0, since
    for change in batch.changes:
        encoded = change.as_json()
        item_size = _wire_size(encoded) + 1
        problem = unshippable(encoded, item_size, max_bytes=max_bytes)
        if problem is not None:
            encoded = {"id": change.id, "type": change.type, "seq": change.seq, "reason": problem}
            item_size = encoded_size(encoded) + 1
        if (changes or skipped) and size + item_size > max_bytes:
            # Cut short: continue after the last change that fits.
            return _answer(changes, skipped, last_seq, more=True, horizon=batch.horizon)
        (changes if problem is None else skipped).append(encoded)
        size += item_size
        last_seq = change.seq
    return _answer(changes, skipped, batch.last_seq, more=batch.more, horizon=batch.horizon)


def _answer(
    changes: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    last_seq: int,
    *,
    more: bool,
    horizon: int,
) -> ReplicaBatch:
    answer: ReplicaBatch = {
        "changes": changes,
        "last_seq": last_seq,
        "more": more,
        "horizon": horizon,
    }
    if skipped:
        answer["skipped"] = skipped
    return answer


def _wire_size(change: dict[str, Any]) -> int:
    """Bytes of the change in a frame, as orjson writes frames (15 times faster than json)."""
    try:
        return len(orjson.dumps(change))
    except orjson.JSONEncodeError:  # what the codec hands to pydantic: an int beyond 64 bits
        return encoded_size(change)


async def versions_since(store: Store, seq: int) -> tuple[dict[str, str | None], int]:
    """Every document changed after ``seq``: its new version, or None when deleted.

    With Couchbase, XDCR carries the documents; ``model.updated`` carries these
    versions so an edge can tell when XDCR has delivered them.
    """
    versions: dict[str, str | None] = {}
    more = True
    while more:
        batch = await store.changes_since(seq, limit=MAX_BATCH)
        for change in batch.changes:
            versions[change.id] = None if change.deleted else change.version
        seq, more = batch.last_seq, batch.more
    return versions, seq


async def replica_fetch(store: Store, args: ReplicaFetchArgs) -> ReplicaDocuments:
    """The master's current copy of the documents an edge asks for (never its secrets)."""
    found = await store.get_many(args.ids)
    return {
        "documents": [doc.as_json() for doc in found.values() if doc.type not in MASTER_ONLY_TYPES]
    }
