"""Edge shared secrets, kept in master-only documents so replicas never see them."""

from __future__ import annotations

import secrets

from app.services.catalog import secret_id
from app.store.base import DocumentNotFound, Store


class EdgeSecrets:
    """Issues, rotates and looks up the secret each edge authenticates its link with."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def issue(self, edge_id: str) -> str:
        """A fresh secret for the edge, replacing any previous one."""
        secret = secrets.token_urlsafe(32)
        await self._store.upsert(secret_id(edge_id), "edge_secret", {"secret": secret})
        return secret

    async def lookup(self, edge_id: str) -> str | None:
        try:
            doc = await self._store.get(secret_id(edge_id))
        except DocumentNotFound:
            return None
        value = doc.body.get("secret")
        return value if isinstance(value, str) else None
