"""The master's side of embedded replication: answering ``replica.changes``.

Batches are bounded by count and by encoded size, so a batch of large documents never
exceeds the link's frame limit (a frame too large closes the link, and the edge would
ask for the same batch again forever).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from app.errors import ResyncRequired
from app.store.base import MASTER_ONLY_TYPES, FeedCompacted, Store

#: Largest number of changes one answer carries.
MAX_BATCH = 1000


async def replica_changes(store: Store, args: dict[str, Any], *, max_bytes: int) -> dict[str, Any]:
    """One batch of the feed after ``args.since`` (``limit``, ``horizon`` as the edge asks)."""
    since = int(args.get("since", 0))
    limit = max(1, min(int(args.get("limit", MAX_BATCH)), MAX_BATCH))
    horizon = int(args.get("horizon", 0))
    try:
        batch = await store.changes_since(since, limit=limit, horizon=horizon)
    except FeedCompacted as exc:
        raise ResyncRequired(str(exc)) from exc
    changes: list[dict[str, Any]] = []
    size = 0
    for change in batch.changes:
        encoded = change.as_json()
        size += _encoded_size(encoded) + 1
        if changes and size > max_bytes:
            # Cut short: continue after the last change that fits.
            return {
                "changes": changes,
                "last_seq": changes[-1]["seq"],
                "more": True,
                "horizon": batch.horizon,
            }
        changes.append(encoded)
    return {
        "changes": changes,
        "last_seq": batch.last_seq,
        "more": batch.more,
        "horizon": batch.horizon,
    }


def _encoded_size(change: dict[str, Any]) -> int:
    """Bytes the change takes in a frame (orjson: 4.4 µs a change with json.dumps, 0.3 µs)."""
    try:
        return len(orjson.dumps(change))
    except orjson.JSONEncodeError:  # an integer beyond 64 bits
        return len(json.dumps(change, separators=(",", ":"), ensure_ascii=False).encode())


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


async def replica_fetch(store: Store, args: dict[str, Any]) -> dict[str, Any]:
    """The master's current copy of the documents an edge asks for (never its secrets)."""
    found = await store.get_many([str(doc_id) for doc_id in args.get("ids", [])])
    return {
        "documents": [doc.as_json() for doc in found.values() if doc.type not in MASTER_ONLY_TYPES]
    }
