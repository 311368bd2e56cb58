"""Edge shared secrets, kept in master-only documents so replicas never see them.

A rotation never locks the edge out by surprise: every secret valid before it stays
valid for at least the rotation's grace, so an edge still configured with any of them
(the one its live link authenticated with above all) reconnects until it is restarted
with the new one, however many rotations came in between. A secret ends when its grace
ends or when the edge first authenticates with a newer one, whichever comes first; a
grace of 0 revokes every secret but the new one at once. Lookups are answered from a
short-lived cache, so a flood of handshakes does not become a flood of store reads.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.control.clock import now_utc
from app.services.catalog import secret_id
from app.store.base import DocumentNotFound, Store

#: Seconds a looked-up secret is served from memory (writes here refresh it at once).
CACHE_S = 5.0


def fingerprint(secret: str) -> str:
    """What names a secret without revealing it: the start of its SHA-256, as
    ``printf %s "$ENGINE_EDGE_SECRET" | sha256sum | cut -c1-12`` prints it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class PreviousSecret:
    """A secret replaced by a rotation, valid until ``until`` (or a newer one is used)."""

    secret: str
    until: datetime


@dataclass(frozen=True)
class EdgeCredentials:
    """An edge's current secret and those still valid after rotations, newest first."""

    current: str
    previous: tuple[PreviousSecret, ...] = ()

    def valid(self, now: datetime) -> list[str]:
        """The secrets that authenticate the edge at ``now``, the current one first."""
        return [self.current, *(p.secret for p in self.previous if now < p.until)]

    def validity(self, now: datetime, *, in_use: str | None = None) -> list[dict[str, Any]]:
        """Each valid secret by fingerprint with its end (None: until the next rotation),
        and which one the edge's live link authenticated with."""
        ends = [(self.current, None), *((p.secret, p.until) for p in self.previous)]
        return [
            {
                "fingerprint": fingerprint(secret),
                "current": until is None,
                "until": until.isoformat() if until else None,
                "in_use": secret == in_use,
            }
            for secret, until in ends
            if until is None or now < until
        ]


@dataclass(frozen=True, slots=True)
class Rotation:
    """A rotation's answer: the new secret (shown once) and every secret valid now."""

    secret: str
    valid: list[dict[str, Any]]


class EdgeSecrets:
    """Issues, rotates and looks up the secrets each edge authenticates its link with."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[float, EdgeCredentials | None]] = {}

    async def issue(self, edge_id: str, grace_s: float = 0.0) -> str:
        """A fresh secret for the edge; every secret valid now stays valid for ``grace_s``
        at least (0: they end now)."""
        secret = secrets.token_urlsafe(32)
        old = await self._read(edge_id)
        kept: tuple[PreviousSecret, ...] = ()
        if old is not None and grace_s > 0:
            now = now_utc()
            until = now + timedelta(seconds=grace_s)
            kept = (
                PreviousSecret(old.current, until),
                *(
                    PreviousSecret(p.secret, max(p.until, until))
                    for p in old.previous
                    if now < p.until
                ),
            )
        await self._write(edge_id, EdgeCredentials(secret, kept))
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

    async def end_grace(self, edge_id: str, used: str) -> None:
        """The edge authenticated with ``used``: every secret older than it ends now."""
        credentials = await self._read(edge_id)
        if credentials is None or not credentials.previous:
            return
        if used == credentials.current:
            kept: tuple[PreviousSecret, ...] = ()
        else:
            newer = [p.secret for p in credentials.previous]
            if used not in newer:
                return
            kept = credentials.previous[: newer.index(used) + 1]
        if kept != credentials.previous:
            await self._write(edge_id, EdgeCredentials(credentials.current, kept))

    async def _write(self, edge_id: str, credentials: EdgeCredentials) -> None:
        body: dict[str, object] = {"secret": credentials.current}
        if credentials.previous:
            body["previous"] = [
                {"secret": p.secret, "until": p.until.isoformat()} for p in credentials.previous
            ]
        self._cache.pop(edge_id, None)
        await self._store.upsert(secret_id(edge_id), "edge_secret", body)
        self._cache.pop(edge_id, None)

    async def _read(self, edge_id: str) -> EdgeCredentials | None:
        try:
            body = (await self._store.get(secret_id(edge_id))).body
        except DocumentNotFound:
            return None
        current = body.get("secret")
        if not isinstance(current, str):
            return None
        return EdgeCredentials(current, _previous(body))


def _previous(body: dict[str, Any]) -> tuple[PreviousSecret, ...]:
    """The still-listed previous secrets, newest first; a document written before
    rotations kept more than one holds ``previous`` and ``previous_until``."""
    listed = body.get("previous")
    if isinstance(listed, str) and isinstance(body.get("previous_until"), str):
        return (PreviousSecret(listed, datetime.fromisoformat(body["previous_until"])),)
    if not isinstance(listed, list):
        return ()
    return tuple(
        PreviousSecret(entry["secret"], datetime.fromisoformat(entry["until"]))
        for entry in listed
        if isinstance(entry, dict)
        and isinstance(entry.get("secret"), str)
        and isinstance(entry.get("until"), str)
    )
