"""Edge shared secrets, kept in master-only documents so replicas never see them.

A rotation keeps the previous secret valid for a grace period, so an edge still
configured with it reconnects until it is restarted with the new one: the previous
secret ends when the grace ends or when the edge first authenticates with the new
one, whichever comes first. Lookups are answered from a short-lived cache, so a flood
of handshakes does not become a flood of store reads.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.control.clock import now_utc
from app.services.catalog import secret_id
from app.store.base import DocumentNotFound, Store

#: Seconds a looked-up secret is served from memory (writes here refresh it at once).
CACHE_S = 5.0


@dataclass(frozen=True)
class EdgeCredentials:
    """An edge's current secret and, during a rotation's grace, the previous one."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def valid(self, now: datetime) -> list[str]:
        """The secrets that authenticate the edge at ``now``, the current one first."""
        if self.previous is None or self.previous_until is None or now >= self.previous_until:
            return [self.current]
        return [self.current, self.previous]


class EdgeSecrets:
    """Issues, rotates and looks up the secrets each edge authenticates its link with."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[float, EdgeCredentials | None]] = {}

    async def issue(self, edge_id: str, grace_s: float = 0.0) -> str:
        """A fresh secret for the edge; the one it replaces stays valid for ``grace_s``."""
        secret = secrets.token_urlsafe(32)
        old = await self._read(edge_id)
        body: dict[str, object] = {"secret": secret}
        if old is not None and grace_s > 0:
            until = now_utc() + timedelta(seconds=grace_s)
            body.update(previous=old.current, previous_until=until.isoformat())
        self._cache.pop(edge_id, None)
        await self._store.upsert(secret_id(edge_id), "edge_secret", body)
        self._cache.pop(edge_id, None)
        return secret

    async def credentials(self, edge_id: str) -> EdgeCredentials | None:
        """The edge's secrets (None: no such edge), from the cache when fresh."""
        cached = self._cache.get(edge_id)
        if cached is not None and time.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        credentials = await self._read(edge_id)
        self._cache[edge_id] = (time.monotonic(), credentials)
        return credentials

    async def valid(self, edge_id: str) -> list[str]:
        """The secrets that authenticate the edge now, the current one first."""
        credentials = await self.credentials(edge_id)
        return credentials.valid(now_utc()) if credentials is not None else []

    async def end_grace(self, edge_id: str) -> None:
        """The edge authenticated with its new secret: the previous one ends now."""
        credentials = await self._read(edge_id)
        if credentials is None or credentials.previous is None:
            return
        self._cache.pop(edge_id, None)
        await self._store.upsert(secret_id(edge_id), "edge_secret", {"secret": credentials.current})
        self._cache.pop(edge_id, None)

    async def _read(self, edge_id: str) -> EdgeCredentials | None:
        try:
            body = (await self._store.get(secret_id(edge_id))).body
        except DocumentNotFound:
            return None
        current = body.get("secret")
        if not isinstance(current, str):
            return None
        previous = body.get("previous")
        until = body.get("previous_until")
        return EdgeCredentials(
            current,
            previous if isinstance(previous, str) else None,
            datetime.fromisoformat(until) if isinstance(until, str) else None,
        )
