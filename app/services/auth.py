"""Bearer-token authentication and the authorization rules of DESIGN §4.

Tokens are random strings shown once; only their SHA-256 is stored. A fast hash is
right here: the tokens carry 256 bits of entropy, so there is nothing to brute-force,
and a lookup by hash keeps every request to one indexed read (cached briefly).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from app.errors import Forbidden, NotFound, Unauthorized
from app.models import IssuedToken, TokenInfo
from app.services.catalog import SYSTEM, USER, Catalog, Kind
from app.store.base import Document, DocumentNotFound, Store

BOOTSTRAP_USER_ID = "user-admin"
BOOTSTRAP_TOKEN_ID = "tok-bootstrap"
TOKEN_PREFIX = "eng_"


@dataclass(frozen=True, slots=True)
class Principal:
    """The user a request acts for, or a room panel's device key.

    A device key (see :mod:`app.services.device_keys`) sets ``system_id``: it may read
    and call that one system and nothing else (:func:`require_room`).
    """

    user_id: str
    name: str
    admin: bool
    system_id: str | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """Resolves bearer tokens to principals and manages users' tokens."""

    def __init__(self, store: Store, catalog: Catalog, *, cache_ttl: float = 5.0) -> None:
        self._store = store
        self._catalog = catalog
        self._cache_ttl = cache_ttl
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("a bearer token is required: Authorization: Bearer <token>")
        digest = token_hash(token)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached and cached[0] > now:
            return cached[1]
        principal = await self._resolve(digest)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self._cache_ttl, principal)
        return principal

    async def _resolve(self, digest: str) -> Principal:
        found = await self._store.find("token", where={"hash": digest}, limit=1)
        if not found.items:
            raise Unauthorized("the bearer token is not valid (unknown or revoked)")
        token = found.items[0]
        if token.body.get("system_id"):
            return device_principal(token)
        user_id = str(token.body["user_id"])
        try:
            user = await self._store.get(user_id)
        except DocumentNotFound:
            raise Unauthorized("the bearer token's user no longer exists") from None
        return Principal(user.id, str(user.body.get("name", "")), bool(user.body.get("admin")))

    def forget(self) -> None:
        """Drop every cached principal: the next request of each token reads the store."""
        self._cache.clear()

    def changed(self, kind: Kind, doc_id: str) -> None:
        """A configuration write here: a user deleted or demoted, or a system deleted with
        its device keys, counts from the next request."""
        if kind in (USER, SYSTEM):
            self.forget()

    async def bootstrap_admin(self, token: str) -> None:
        """Make ``token`` a system admin's token (``ENGINE_ADMIN_TOKEN``); idempotent."""
        try:
            await self._store.get(BOOTSTRAP_USER_ID)
        except DocumentNotFound:
            await self._store.upsert(
                BOOTSTRAP_USER_ID, "user", {"name": "admin", "email": None, "admin": True}
            )
        digest = token_hash(token)
        try:
            current = await self._store.get(BOOTSTRAP_TOKEN_ID)
            if current.body.get("hash") == digest:
                return
        except DocumentNotFound:
            pass
        await self._store.upsert(
            BOOTSTRAP_TOKEN_ID, "token", _token_body(BOOTSTRAP_USER_ID, "bootstrap", digest)
        )
        self._cache.clear()

    async def issue(self, user_id: str, name: str) -> IssuedToken:
        await self._user(user_id)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = f"tok-{secrets.token_hex(5)}"
        await self._store.insert(token_id, "token", _token_body(user_id, name, token_hash(token)))
        return IssuedToken(id=token_id, token=token)

    async def tokens(self, user_id: str) -> list[TokenInfo]:
        await self._user(user_id)
        page = await self._store.find("token", where={"user_id": user_id})
        return [_token_info(doc) for doc in page.items]

    async def revoke(self, user_id: str, token_id: str) -> None:
        try:
            doc = await self._store.get(token_id)
        except DocumentNotFound:
            doc = None
        if doc is None or doc.type != "token" or doc.body.get("user_id") != user_id:
            raise NotFound(f"user {user_id!r} has no token {token_id!r}")
        await self._store.delete(token_id)
        self._cache.clear()

    async def _user(self, user_id: str) -> Document:
        return await self._catalog.get(USER, user_id)


def device_principal(token: Document) -> Principal:
    """The principal of a device key: no user, no admin, one system."""
    return Principal(
        f"key:{token.id}", str(token.body.get("name", "")), False, str(token.body["system_id"])
    )


def require_room(principal: Principal, system_id: str | None) -> None:
    """A device key reads and calls only its own system; a user's token is not limited here.

    ``system_id`` is the system a request is about (None: it is about no one system).
    """
    if principal.system_id is not None and principal.system_id != system_id:
        raise Forbidden(
            f"a device key reads and calls only its own room ({principal.system_id!r}), "
            "nothing else"
        )


def require_admin(principal: Principal) -> None:
    if not principal.admin:
        raise Forbidden(f"user {principal.user_id!r} is not a system admin")


def require_edge_admin(principal: Principal, edge: Document) -> None:
    """Edge operations: a system admin, or one of that edge's ``admins``."""
    if principal.admin or principal.user_id in edge.body.get("admins", []):
        return
    raise Forbidden(
        f"user {principal.user_id!r} is neither a system admin nor an admin of edge {edge.id!r}"
    )


def require_self_or_admin(principal: Principal, user_id: str) -> None:
    if not principal.admin and principal.user_id != user_id:
        raise Forbidden(f"only a system admin may manage the tokens of user {user_id!r}")


def _token_body(user_id: str, name: str, digest: str) -> dict[str, object]:
    return {
        "user_id": user_id,
        "name": name,
        "hash": digest,
        "created_at": datetime.now(UTC).isoformat(),
    }


def _token_info(doc: Document) -> TokenInfo:
    return TokenInfo(
        id=doc.id,
        name=str(doc.body.get("name", "")),
        user_id=str(doc.body["user_id"]),
        created_at=datetime.fromisoformat(str(doc.body["created_at"])),
    )
