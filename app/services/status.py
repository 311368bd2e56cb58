"""What the status page and ``ctl status`` show: every location this server knows of.

A snapshot joins, per edge location, its configuration (name, zone, admins, rooms), the
control document (:meth:`ControlService.describe`), and its last decisions. The
configuration part changes only with a store write, so it is cached on the store's
sequence; the control part (online, the failover countdown) is asked for each time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.control.clock import now_utc
from app.errors import Forbidden
from app.services.auth import Principal, require_edge_admin
from app.services.catalog import EDGE, SYSTEM, Catalog
from app.services.control import ControlService, history
from app.store.base import Document, Store

#: How many past decisions each location shows.
RECENT_EVENTS = 8
#: How often a live view looks for changes: well inside the page's one-second promise.
POLL_INTERVAL_S = 0.25
#: Fields that change on every look without anything happening (the countdown).
_VOLATILE = frozenset({"retry_after"})


@dataclass(frozen=True, slots=True)
class _Configuration:
    """The store-derived part of a snapshot, valid for one store sequence."""

    seq: int
    edges: tuple[Document, ...]
    systems: Mapping[str | None, tuple[str, ...]]
    events: Mapping[str, tuple[dict[str, Any], ...]]


class StatusBoard:
    """Builds status snapshots for one server; ``edge_id`` set means an edge (its own only)."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        control: Callable[[], ControlService | None],
        *,
        node_name: str,
        edge_id: str | None,
        poll_interval_s: float = POLL_INTERVAL_S,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._control = control
        self._node_name = node_name
        self._edge_id = edge_id
        self._poll_interval_s = poll_interval_s
        self._configuration: _Configuration | None = None
        self._lock = asyncio.Lock()

    async def snapshot(self, user: Principal) -> dict[str, Any]:
        """Every location this server shows, as ``user`` may see and operate it."""
        configuration = await self._current_configuration()
        control = self._control()
        locations = []
        for edge in configuration.edges:
            described = await control.describe(edge) if control is not None else None
            locations.append(
                {
                    "id": edge.id,
                    "name": edge.body.get("name", edge.id),
                    "description": edge.body.get("description"),
                    "timezone": edge.body.get("timezone", "UTC"),
                    "failover": edge.body.get("failover", True),
                    "timeout": edge.body.get("timeout"),
                    "window_start": edge.body.get("window_start"),
                    "systems": list(configuration.systems.get(edge.id, ())),
                    "can_operate": _may_operate(user, edge),
                    "control": described,
                    "events": list(configuration.events.get(edge.id, ())),
                }
            )
        return {
            "node": self._node_name,
            "role": "edge" if self._edge_id else "master",
            "server_time": now_utc().isoformat(),
            "user": {"id": user.user_id, "name": user.name, "admin": user.admin},
            # Restore and takeover are the master's decisions; an edge links to it.
            "operations_here": self._edge_id is None,
            "master_systems": ([] if self._edge_id else list(configuration.systems.get(None, ()))),
            "locations": locations,
        }

    async def changes(
        self, user: Callable[[], Awaitable[Principal]], *, heartbeat_s: float = 15.0
    ) -> AsyncIterator[dict[str, Any] | None]:
        """The snapshot now, then each one that differs, looked for every poll interval.

        ``None`` comes when nothing changed for ``heartbeat_s``, so a quiet stream still
        shows it is alive. ``user`` is awaited before each look and returns the current
        principal: a revoked token ends the stream with what the authenticator raises.
        """
        previous: Any = None
        last_sent = time.monotonic()
        while True:
            snapshot = await self.snapshot(await user())
            comparable = _comparable(snapshot)
            if comparable != previous:
                previous = comparable
                last_sent = time.monotonic()
                yield snapshot
            elif time.monotonic() - last_sent >= heartbeat_s:
                last_sent = time.monotonic()
                yield None
            await asyncio.sleep(self._poll_interval_s)

    async def _current_configuration(self) -> _Configuration:
        seq = await self._store.last_seq()
        cached = self._configuration
        if cached is not None and cached.seq == seq:
            return cached
        async with self._lock:
            cached = self._configuration
            if cached is not None and cached.seq == seq:
                return cached
            self._configuration = await self._load(seq)
            return self._configuration

    async def _load(self, seq: int) -> _Configuration:
        if self._edge_id is not None:
            edges: tuple[Document, ...] = (await self._catalog.get(EDGE, self._edge_id),)
        else:
            edges = tuple((await self._catalog.find(EDGE)).items)
        systems: dict[str | None, list[str]] = {}
        for system in (await self._catalog.find(SYSTEM)).items:
            location = system.body.get("edge_control_id")
            if self._edge_id is None or location == self._edge_id:
                systems.setdefault(location, []).append(system.body.get("name", system.id))
        events = {
            edge.id: tuple(await history(self._store, edge.id, RECENT_EVENTS)) for edge in edges
        }
        return _Configuration(seq, edges, {k: tuple(v) for k, v in systems.items()}, events)


def _may_operate(user: Principal, edge: Document) -> bool:
    """Whether ``user`` may restore or take over ``edge`` (the API's own rule)."""
    try:
        require_edge_admin(user, edge)
    except Forbidden:
        return False
    return True


def _comparable(snapshot: Mapping[str, Any]) -> Any:
    """The snapshot without what changes by itself (the clock, the countdown)."""
    locations = [
        {
            **location,
            "control": {k: v for k, v in (location["control"] or {}).items() if k not in _VOLATILE},
        }
        for location in snapshot["locations"]
    ]
    return {**snapshot, "server_time": None, "locations": locations}
