"""Device keys: API keys limited to one system, for room panels (README: Room panels).

A device key is stored like a user's token — a ``token`` document holding only the
SHA-256 of the key, found by hash at each request — with a ``system_id`` where a
user's token has its ``user_id``. The authenticator turns it into a principal that may
read and call that one system and nothing else (:func:`app.services.auth.require_room`).
Deleting the key revokes it; deleting the system deletes its keys.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from urllib.parse import quote

from pydantic import BaseModel, Field

from app.errors import NotFound
from app.services.auth import TOKEN_PREFIX, Authenticator, token_hash
from app.services.catalog import SYSTEM, Catalog
from app.store.base import Document, DocumentNotFound, Store

#: Device keys' document ids start so, users' tokens with ``tok-``.
KEY_ID_PREFIX = "key-"


class DeviceKeyRequest(BaseModel):
    name: str = Field(
        default="panel", min_length=1, max_length=200, description="what the key is for"
    )


class IssuedDeviceKey(BaseModel):
    """A new device key: ``key`` is shown here only."""

    id: str
    key: str = Field(description="the device key (an API key); shown once")
    system_id: str
    name: str
    panel_url: str | None = Field(
        default=None,
        description="the room panel signed in with this key (served by the master)",
    )


class DeviceKeyInfo(BaseModel):
    """A device key as listed: never the key itself."""

    id: str
    system_id: str
    name: str
    created_at: datetime
    created_by: str | None


def panel_link(master_url: str, system_id: str, key: str) -> str:
    """``MASTER/panel/?system=ID#x-api-key=KEY``: the panel opened as kiosks are set up."""
    return (
        f"{master_url.rstrip('/')}/panel/?system={quote(system_id, safe='')}"
        f"#x-api-key={quote(key, safe='')}"
    )


class DeviceKeys:
    """Issues, lists and revokes the device keys of a system."""

    def __init__(self, store: Store, catalog: Catalog, auth: Authenticator) -> None:
        self._store = store
        self._catalog = catalog
        self._auth = auth

    async def issue(self, system_id: str, name: str, *, by: str) -> IssuedDeviceKey:
        """A new key for the system (``NotFound`` when there is no such system)."""
        await self._catalog.get(SYSTEM, system_id)
        key = TOKEN_PREFIX + secrets.token_urlsafe(32)
        key_id = KEY_ID_PREFIX + secrets.token_hex(5)
        body = {
            "system_id": system_id,
            "name": name,
            "hash": token_hash(key),
            "created_at": datetime.now(UTC).isoformat(),
            "created_by": by,
        }
        await self._store.insert(key_id, "token", body)
        return IssuedDeviceKey(id=key_id, key=key, system_id=system_id, name=name)

    async def listed(self, system_id: str) -> list[DeviceKeyInfo]:
        await self._catalog.get(SYSTEM, system_id)
        page = await self._store.find("token", where={"system_id": system_id})
        return sorted((_info(doc) for doc in page.items), key=lambda key: key.created_at)

    async def revoke(self, system_id: str, key_id: str) -> None:
        """Delete the key; the next request made with it is refused (401)."""
        try:
            doc: Document | None = await self._store.get(key_id)
        except DocumentNotFound:
            doc = None
        if doc is None or doc.type != "token" or doc.body.get("system_id") != system_id:
            raise NotFound(f"system {system_id!r} has no device key {key_id!r}")
        await self._store.delete(key_id)
        self._auth.forget()


def _info(doc: Document) -> DeviceKeyInfo:
    return DeviceKeyInfo(
        id=doc.id,
        system_id=str(doc.body["system_id"]),
        name=str(doc.body.get("name", "")),
        created_at=datetime.fromisoformat(str(doc.body["created_at"])),
        created_by=doc.body.get("created_by"),
    )
