"""The master's side of embedded replication: answering ``replica.changes``.

Batches are bounded by count and by encoded size, so a batch of large documents never
exceeds the link's frame limit (a frame too large closes the link, and the edge would
ask for the same batch again forever).
"""

from __future__ import annotations

import json
from typing import Any

from app.errors import ResyncRequired
from app.store.base import FeedCompacted, Store

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
        size += len(json.dumps(encoded, separators=(",", ":"))) + 1
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
