"""What the status page and ``ctl status`` show: every location this server knows of.

A snapshot joins, per edge location, its configuration (name, zone, admins, rooms), the
control document (:meth:`ControlService.describe`), and its last decisions.

It has to stay cheap with a thousand locations and several pages open. So:

* the configuration part changes only with a store write; it is cached on the store's
  sequence and brought up to date from the change feed, reloading only what changed
  (one location's decisions after its ControlEvent, the edges and rooms after a change
  to them) instead of every location's history at every write;
* the locations' view (configuration and control) is built once per poll interval and
  shared by every viewer; what differs per user (who they are, where they may operate)
  is laid over it per snapshot;
* a live view compares versions of that shared view, not whole snapshots.

A snapshot also says what the page needs to stay truthful when something is wrong: the
keep-alive interval (a page that hears nothing for longer knows the server stopped
answering), this server's own health (the store on the master, the link on an edge)
and, on an edge, the state of its link to the master in one word.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.control.clock import now_utc
from app.errors import Forbidden
from app.services.auth import Principal, require_edge_admin
from app.services.catalog import EDGE, SYSTEM, Catalog
from app.services.control import ControlService, history
from app.store.base import Document, FeedCompacted, Store

#: How many past decisions each location shows.
RECENT_EVENTS = 8
#: How often a live view looks for changes: well inside the page's one-second promise.
POLL_INTERVAL_S = 0.25
#: Seconds a quiet live view waits before it shows it is alive (ENGINE_STATUS_KEEPALIVE_S).
KEEPALIVE_S = 3.0
#: An edge's link to the master, in one word: up, or why not (see :func:`master_link`).
LINK_STATES = ("up", "closed", "refused", "tls", "unreachable")
#: Fields that change on every look without anything happening (the countdown).
_VOLATILE = frozenset({"retry_after"})
#: Past this many changes since the last look, reloading everything is cheaper.
_INCREMENTAL_LIMIT = 2000
_CONTROL_EVENT = "control_event"


@dataclass(frozen=True, slots=True)
class _Configuration:
    """The store-derived part of a snapshot, valid for one store sequence."""

    seq: int
    edges: tuple[Document, ...]
    systems: Mapping[str | None, tuple[str, ...]]
    events: Mapping[str, tuple[dict[str, Any], ...]]


@dataclass(frozen=True, slots=True)
class _View:
    """Every location as any viewer sees it (no per-user part), built at ``built``.

    ``version`` moves only when something a viewer would see changed.
    """

    configuration: _Configuration
    locations: tuple[dict[str, Any], ...]
    comparable: Any
    built: float
    version: int


class StatusBoard:
    """Builds status snapshots for one server; ``edge_id`` set means an edge (its own only)."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        control: ControlService,
        *,
        node_name: str,
        edge_id: str | None,
        master_url: str | None = None,
        poll_interval_s: float = POLL_INTERVAL_S,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._control = control
        self._node_name = node_name
        self._edge_id = edge_id
        self._master_url = master_url
        self._poll_interval_s = poll_interval_s
        self._keepalive_s = keepalive_s
        self._configuration: _Configuration | None = None
        self._view: _View | None = None
        self._lock = asyncio.Lock()

    async def snapshot(self, user: Principal) -> dict[str, Any]:
        """Every location this server shows, as ``user`` may see and operate it."""
        view = await self._current_view()
        return self._for(user, view, self._operable(user, view))

    async def changes(
        self, user: Callable[[], Awaitable[Principal]], *, heartbeat_s: float | None = None
    ) -> AsyncIterator[dict[str, Any] | None]:
        """The snapshot now, then each one that differs, looked for every poll interval.

        ``None`` comes when nothing was sent for ``heartbeat_s`` (the keep-alive interval
        by default), so a quiet stream still shows it is alive and a page that hears
        nothing for longer knows the server stopped answering. ``user`` is awaited before
        each look and returns the current principal: a revoked token ends the stream with
        what the authenticator raises.
        """
        heartbeat_s = self._keepalive_s if heartbeat_s is None else heartbeat_s
        previous: Any = None
        last_sent = time.monotonic()
        while True:
            principal = await user()
            view = await self._current_view()
            operable = self._operable(principal, view)
            health = self._control.health()
            seen = (view.version, principal, operable, health)
            if seen != previous:
                previous = seen
                last_sent = time.monotonic()
                yield self._for(principal, view, operable, health)
            elif time.monotonic() - last_sent >= heartbeat_s:
                last_sent = time.monotonic()
                yield None
            await asyncio.sleep(min(self._poll_interval_s, heartbeat_s))

    def _for(
        self,
        user: Principal,
        view: _View,
        operable: tuple[bool, ...],
        health: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``view`` as ``user`` sees it; ``operable``: where they may restore or take over."""
        health = self._control.health() if health is None else health
        own = view.locations[0]["control"] if self._edge_id and view.locations else None
        return {
            "node": self._node_name,
            "role": "edge" if self._edge_id else "master",
            "server_time": now_utc().isoformat(),
            # A page that hears nothing (no snapshot, no keep-alive) for longer than this
            # knows the server stopped answering.
            "keepalive_s": self._keepalive_s,
            # This server's own health, as /api/ready reports it.
            "health": health,
            "master_link": (
                master_link(health.get("link") or {}, own, self._master_url)
                if self._edge_id
                else None
            ),
            "user": {"id": user.user_id, "name": user.name, "admin": user.admin},
            # Restore and takeover are the master's decisions; an edge links to it.
            "operations_here": self._edge_id is None,
            "master_systems": (
                [] if self._edge_id else list(view.configuration.systems.get(None, ()))
            ),
            "locations": [
                {**location, "can_operate": can}
                for location, can in zip(view.locations, operable, strict=True)
            ],
        }

    @staticmethod
    def _operable(user: Principal, view: _View) -> tuple[bool, ...]:
        return tuple(_may_operate(user, edge) for edge in view.configuration.edges)

    async def _current_view(self) -> _View:
        """The shared view, rebuilt when it is a poll interval old or the store moved."""
        configuration = await self._current_configuration()
        view = self._view
        if view is not None and self._fresh(view, configuration):
            return view
        async with self._lock:
            view = self._view
            if view is not None and self._fresh(view, configuration):
                return view
            self._view = await self._build(configuration, view)
            return self._view

    def _fresh(self, view: _View, configuration: _Configuration) -> bool:
        age = time.monotonic() - view.built
        return view.configuration is configuration and age < self._poll_interval_s * 0.8

    async def _build(self, configuration: _Configuration, previous: _View | None) -> _View:
        locations = []
        for edge in configuration.edges:
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
                    "control": await self._control.describe(edge),
                    "events": list(configuration.events.get(edge.id, ())),
                }
            )
        comparable = _comparable(locations, configuration)
        version = 0 if previous is None else previous.version
        if previous is None or previous.comparable != comparable:
            version += 1
        return _View(configuration, tuple(locations), comparable, time.monotonic(), version)

    async def _current_configuration(self) -> _Configuration:
        seq = await self._store.last_seq()
        cached = self._configuration
        if cached is not None and cached.seq == seq:
            return cached
        async with self._lock:
            cached = self._configuration
            if cached is not None and cached.seq == seq:
                return cached
            self._configuration = await self._refresh(cached)
            return self._configuration

    async def _refresh(self, cached: _Configuration | None) -> _Configuration:
        """``cached`` brought up to the store's latest sequence, from the change feed."""
        if cached is None:
            return await self._load()
        try:
            touched = await self._touched_since(cached.seq)
        except FeedCompacted:
            touched = None
        if touched is None:
            return await self._load()
        seq, types, event_edges = touched
        edges, systems = cached.edges, cached.systems
        if EDGE.name in types:
            edges = await self._edges()
        if SYSTEM.name in types:
            systems = await self._systems()
        events = {edge.id: cached.events[edge.id] for edge in edges if edge.id in cached.events}
        for edge in edges:
            if edge.id in event_edges or edge.id not in events:
                events[edge.id] = tuple(await history(self._store, edge.id, RECENT_EVENTS))
        return _Configuration(seq, edges, systems, events)

    async def _touched_since(self, seq: int) -> tuple[int, set[str], set[str]] | None:
        """The newest sequence, the document types changed after ``seq`` and the edges
        with new decisions; None when so much changed that a full load is cheaper."""
        types: set[str] = set()
        event_edges: set[str] = set()
        seen, more = 0, True
        while more:
            batch = await self._store.changes_since(seq, limit=500)
            for change in batch.changes:
                types.add(change.type)
                if change.type == _CONTROL_EVENT and change.body is not None:
                    event_edges.add(str(change.body.get("edge_id")))
                elif change.type == _CONTROL_EVENT:  # deleted (pruned): whose is unknown
                    return None
            seen += len(batch.changes)
            if seen > _INCREMENTAL_LIMIT:
                return None
            seq, more = batch.last_seq, batch.more
        return seq, types, event_edges

    async def _load(self) -> _Configuration:
        seq = await self._store.last_seq()
        edges = await self._edges()
        events = {
            edge.id: tuple(await history(self._store, edge.id, RECENT_EVENTS)) for edge in edges
        }
        return _Configuration(seq, edges, await self._systems(), events)

    async def _edges(self) -> tuple[Document, ...]:
        if self._edge_id is not None:
            return (await self._catalog.get(EDGE, self._edge_id),)
        return tuple((await self._catalog.find(EDGE)).items)

    async def _systems(self) -> Mapping[str | None, tuple[str, ...]]:
        systems: dict[str | None, list[str]] = {}
        for system in (await self._catalog.find(SYSTEM)).items:
            location = system.body.get("edge_control_id")
            if self._edge_id is None or location == self._edge_id:
                systems.setdefault(location, []).append(system.body.get("name", system.id))
        return {k: tuple(v) for k, v in systems.items()}


def master_link(
    link: Mapping[str, Any], control: Mapping[str, Any] | None, master_url: str | None
) -> dict[str, Any]:
    """An edge's link to the master in one word, with why and since when.

    ``state`` is ``up``, or why not: ``refused`` (the master answers and refuses this
    edge), ``tls`` (the master answers, TLS failed), ``closed`` (the link closed; whether
    the master lives is not known yet) or ``unreachable`` (nothing answers).
    ``master_alive`` says whether the latest failure proved the master answers (None:
    unknown). The link reports these itself (``link_state``, ``master_alive``,
    ``link_state_since``); from a link that only reports ``connected`` and its last
    ``error``, they are read from the error's words and from what the master's witness
    last said (``control``'s ``witness``).
    """
    error, error_at = link.get("error"), link.get("error_at")
    state = link.get("link_state")
    alive = link.get("master_alive")
    if state not in LINK_STATES:
        state, alive = _classify(bool(link.get("connected")), error, alive)
    witness = (control or {}).get("witness") or {}
    if (
        state == "closed"
        and alive is not True
        and witness.get("result") == "unreachable"
        and _not_before(witness.get("checked_at"), error_at)
    ):
        state, alive = "unreachable", False  # the witness asked since, and nothing answered
    if state == "up":
        alive = True
    return {
        "state": state,
        "master_alive": alive,
        # Only a link that tracks its state knows since when; the last error has its time.
        "since": link.get("link_state_since"),
        "error": None if state == "up" else error,
        "error_at": error_at,
        "master_url": master_url,
    }


def _not_before(moment: str | None, other: str | None) -> bool:
    """Whether the ISO instant ``moment`` is not before ``other`` (no ``other``: True)."""
    if moment is None:
        return False
    if other is None:
        return True
    try:
        return datetime.fromisoformat(moment) >= datetime.fromisoformat(other)
    except (TypeError, ValueError):
        return False


def _classify(connected: bool, error: str | None, alive: bool | None) -> tuple[str, bool | None]:
    """``(state, master_alive)`` from a link's last error, in the words the edge uses."""
    if connected:
        return "up", True
    text = (error or "").lower()
    if any(word in text for word in ("refused this edge", "failed authentication", "revoked")):
        return "refused", True
    if any(word in text for word in ("ssl", "certificate", "tls")):
        return "tls", True
    if "invalidstatus" in text or "http " in text:
        return "closed", True  # an HTTP answer: someone is there
    if any(word in text for word in ("the link dropped", "closed the connection", "link closed")):
        return "closed", alive
    return "unreachable", False if alive is None else alive


def _may_operate(user: Principal, edge: Document) -> bool:
    """Whether ``user`` may restore or take over ``edge`` (the API's own rule)."""
    try:
        require_edge_admin(user, edge)
    except Forbidden:
        return False
    return True


def _comparable(locations: list[dict[str, Any]], configuration: _Configuration) -> Any:
    """The view without what changes by itself (the countdown), plus what decides who
    may operate where (each location's admins), so a change to either is a new version."""
    return (
        [
            {
                **location,
                "control": {
                    k: v for k, v in (location["control"] or {}).items() if k not in _VOLATILE
                },
            }
            for location in locations
        ],
        [edge.body.get("admins") for edge in configuration.edges],
        configuration.systems.get(None, ()),
    )
