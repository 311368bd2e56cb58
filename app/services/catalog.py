"""The configuration catalog: create, read, update and delete the documents of §3.

Validation a user expects lives here: field rules come from the models, and the
catalog adds what needs the store — referenced ids must exist, and a module may not
sit in systems of two different locations.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from app.control.clock import now_utc
from app.errors import Conflict, InvalidField, NotFound, PreconditionFailed
from app.models import (
    ControlSystem,
    Driver,
    DriverFields,
    EdgeControl,
    EdgeFields,
    Fields,
    Module,
    ModuleCreate,
    ModuleFields,
    SystemFields,
    User,
    UserFields,
)
from app.services.control import control_id
from app.services.limits import check_document
from app.services.validation import parse
from app.store.base import Document, DocumentNotFound, JsonObject, Page, Store, VersionConflict

#: How often a read-modify-write is retried when another writer got there first.
CAS_RETRIES = 20


@dataclass(frozen=True, slots=True)
class Kind:
    """One configuration resource: its document type, models and id prefix."""

    name: str
    plural: str
    prefix: str
    create_model: type[Fields]
    fields_model: type[Fields]
    document_model: type[BaseModel]

    def new_id(self) -> str:
        return f"{self.prefix}-{secrets.token_hex(5)}"


EDGE = Kind("edge", "edges", "edge", EdgeFields, EdgeFields, EdgeControl)
SYSTEM = Kind("system", "systems", "sys", SystemFields, SystemFields, ControlSystem)
MODULE = Kind("module", "modules", "mod", ModuleCreate, ModuleFields, Module)
DRIVER = Kind("driver", "drivers", "drv", DriverFields, DriverFields, Driver)
USER = Kind("user", "users", "user", UserFields, UserFields, User)
KINDS: Mapping[str, Kind] = {k.name: k for k in (EDGE, SYSTEM, MODULE, DRIVER, USER)}


def secret_id(edge_id: str) -> str:
    """The id of the master-only document holding an edge's shared secret."""
    return f"edge_secret::{edge_id}"


def merge_patch(target: JsonObject, patch: Mapping[str, Any]) -> JsonObject:
    """RFC 7396 JSON merge patch: objects merge recursively, ``null`` removes."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


class Catalog:
    """CRUD over configuration documents with the checks that need the store."""

    def __init__(self, store: Store, *, max_document_bytes: int = 256 * 1024) -> None:
        self._store = store
        self._max_document_bytes = max_document_bytes
        #: Called with the kind and id after each write or delete (cache invalidation).
        self.on_change: Callable[[Kind, str], None] | None = None

    async def get(self, kind: Kind, doc_id: str) -> Document:
        try:
            doc = await self._store.get(doc_id)
        except DocumentNotFound:
            doc = None
        if doc is None or doc.type != kind.name:
            raise NotFound(f"{kind.name} {doc_id!r} does not exist")
        return doc

    async def find(
        self,
        kind: Kind,
        *,
        where: Mapping[str, str] | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> Page:
        return await self._store.find(kind.name, where=where, after=after, limit=limit)

    async def create(self, kind: Kind, data: object) -> Document:
        model = parse(kind.create_model, data)
        body = parse(kind.fields_model, model.model_dump(include=_field_names(kind)))
        stored = written(body.model_dump(mode="json"), created=True)
        self._check_size(kind.name, None, stored)
        await self._check_references(kind, None, stored)
        target_system = getattr(model, "system_id", None)
        if target_system is not None:
            system = await self._get_field_ref(SYSTEM, target_system, "system_id")
            await self._check_module_location(None, system.body.get("edge_control_id"), [])
        doc = await self._store.insert(kind.new_id(), kind.name, stored)
        if target_system is not None:
            await self._update_with_retry(
                target_system, lambda body: {**body, "modules": [*body["modules"], doc.id]}
            )
        return doc

    async def update(
        self, kind: Kind, doc_id: str, patch: object, *, if_match: str | None = None
    ) -> Document:
        if not isinstance(patch, Mapping):
            raise InvalidField("body", "must be a JSON object (a merge patch)")
        current = await self.get(kind, doc_id)
        if if_match is not None and if_match not in ("*", current.version):
            raise PreconditionFailed(
                f"{kind.name} {doc_id!r} is at version {current.version}, not {if_match}"
            )
        names = _field_names(kind)
        editable = {k: v for k, v in current.body.items() if k in names}
        fields = parse(kind.fields_model, merge_patch(editable, patch)).model_dump(mode="json")
        await self._check_references(kind, doc_id, fields)
        maintained = {k: v for k, v in current.body.items() if k not in names}
        body = written({**maintained, **fields})
        self._check_size(kind.name, doc_id, body)
        try:
            doc = await self._store.replace(doc_id, body, expected_version=current.version)
        except VersionConflict as exc:
            raise PreconditionFailed(
                f"{kind.name} {doc_id!r} changed while it was being updated; "
                "read it again and retry"
            ) from exc
        self._changed(kind, doc_id)
        return doc

    async def delete(self, kind: Kind, doc_id: str, *, if_match: str | None = None) -> None:
        current = await self.get(kind, doc_id)
        if if_match is not None and if_match not in ("*", current.version):
            raise PreconditionFailed(
                f"{kind.name} {doc_id!r} is at version {current.version}, not {if_match}"
            )
        await self._check_unreferenced(kind, doc_id)
        try:
            await self._store.delete(doc_id, expected_version=current.version)
        except VersionConflict as exc:
            raise PreconditionFailed(f"{kind.name} {doc_id!r} changed; read it again") from exc
        await self._cascade(kind, doc_id)
        self._changed(kind, doc_id)

    async def set_maintained(self, kind: Kind, doc_id: str, **values: Any) -> Document:
        """Write fields the system maintains (an edge's ``commit``), whatever the version."""
        await self.get(kind, doc_id)
        return await self._update_with_retry(doc_id, lambda body: {**body, **values})

    def _changed(self, kind: Kind, doc_id: str) -> None:
        if self.on_change is not None:
            self.on_change(kind, doc_id)

    # --- checks -----------------------------------------------------------------

    def _check_size(self, kind: str, doc_id: str | None, body: JsonObject) -> None:
        check_document(kind, doc_id, body, max_bytes=self._max_document_bytes)

    async def _check_references(self, kind: Kind, doc_id: str | None, body: JsonObject) -> None:
        if kind is SYSTEM:
            edge_id = body.get("edge_control_id")
            if edge_id is not None:
                await self._get_field_ref(EDGE, edge_id, "edge_control_id")
            modules: list[str] = body["modules"]
            found = await self._store.get_many(modules)
            for index, module_id in enumerate(modules):
                if module_id not in found or found[module_id].type != "module":
                    raise InvalidField(f"modules[{index}]", f"module {module_id!r} does not exist")
            for module_id in modules:
                await self._check_module_location(module_id, edge_id, [doc_id] if doc_id else [])
        elif kind is MODULE:
            await self._get_field_ref(DRIVER, body["driver_id"], "driver_id")
        elif kind is EDGE:
            users = await self._store.get_many(body["admins"])
            for index, user_id in enumerate(body["admins"]):
                if user_id not in users or users[user_id].type != "user":
                    raise InvalidField(f"admins[{index}]", f"user {user_id!r} does not exist")

    async def _check_module_location(
        self, module_id: str | None, edge_id: str | None, ignore: list[str]
    ) -> None:
        if module_id is None:
            return
        holders = await self._store.find("system", where={"modules": module_id})
        for system in holders.items:
            if system.id in ignore:
                continue
            other = system.body.get("edge_control_id")
            if other != edge_id:
                raise InvalidField(
                    "modules",
                    f"module {module_id!r} is already in system {system.id!r} of "
                    f"{_location(other)}; a module may not sit in systems of two locations",
                )

    async def _get_field_ref(self, kind: Kind, doc_id: str, field: str) -> Document:
        try:
            return await self.get(kind, doc_id)
        except NotFound:
            raise InvalidField(field, f"{kind.name} {doc_id!r} does not exist") from None

    async def _check_unreferenced(self, kind: Kind, doc_id: str) -> None:
        if kind is DRIVER:
            users = await self._store.find("module", where={"driver_id": doc_id}, limit=5)
            if users.total:
                raise Conflict(
                    f"driver {doc_id!r} is used by {users.total} module(s), e.g. "
                    f"{', '.join(d.id for d in users.items)}; delete or move them first"
                )
        elif kind is EDGE:
            systems = await self._store.find("system", where={"edge_control_id": doc_id}, limit=5)
            if systems.total:
                raise Conflict(
                    f"edge {doc_id!r} still holds {systems.total} system(s), e.g. "
                    f"{', '.join(d.id for d in systems.items)}; move them first"
                )

    async def _cascade(self, kind: Kind, doc_id: str) -> None:
        if kind is MODULE:
            holders = await self._store.find("system", where={"modules": doc_id})
            for system in holders.items:
                await self._update_with_retry(
                    system.id,
                    lambda body: {**body, "modules": [m for m in body["modules"] if m != doc_id]},
                )
        elif kind is EDGE:
            for owned in (secret_id(doc_id), control_id(doc_id)):
                with suppress(DocumentNotFound):
                    await self._store.delete(owned)
        elif kind is USER or kind is SYSTEM:
            # A user's tokens, or a system's device keys (README: Room panels).
            owner = "user_id" if kind is USER else "system_id"
            tokens = await self._store.find("token", where={owner: doc_id})
            for token in tokens.items:
                with suppress(DocumentNotFound):
                    await self._store.delete(token.id)

    async def _update_with_retry(
        self, doc_id: str, change: Callable[[JsonObject], JsonObject]
    ) -> Document:
        """Read-modify-write with CAS, retried so that concurrent writers lose nothing."""
        for _ in range(CAS_RETRIES):
            current = await self._store.get(doc_id)
            body = written(change(current.body))
            self._check_size(current.type, doc_id, body)
            try:
                return await self._store.replace(doc_id, body, expected_version=current.version)
            except VersionConflict:
                continue
        raise Conflict(f"{doc_id!r} is being changed by others; try again")


def written(body: JsonObject, *, created: bool = False) -> JsonObject:
    """``body`` stamped with the time of this write (``updated_at``; ``created_at`` too
    for a new document), as PlaceOS front ends read documents."""
    now = now_utc().isoformat()
    return {**body, **({"created_at": now} if created else {}), "updated_at": now}


def _field_names(kind: Kind) -> set[str]:
    return set(kind.fields_model.model_fields)


def _location(edge_id: str | None) -> str:
    return f"edge {edge_id!r}" if edge_id else "the master"
