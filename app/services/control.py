"""Who controls each edge's devices, as the API reports it (both roles).

The master answers from its supervisors; an edge from the ControlState documents the
master wrote and replication brought. Operations that change control (restore,
takeover) and location-wide requests (repository) are the master's: each role
provides a :class:`ControlService`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from app.control.clock import now_utc
from app.control.windows import RestoreWindow
from app.link.failures import LinkReport
from app.models import DEFAULT_FAILOVER_TIMEOUT_S
from app.runtime.reports import RepositoryOutcome
from app.services.routing import Placement
from app.store.base import Document, DocumentNotFound, Store

if TYPE_CHECKING:
    from app.services.secrets import Rotation


class StoreHealth:
    """Whether this server's store takes writes, as the last control write found it.

    ``on_change`` hears every failed write and every recovery (the metrics follow it).
    """

    def __init__(self, on_change: Callable[[bool], None] | None = None) -> None:
        self.writable = True
        self.error: str | None = None
        self.since: datetime | None = None
        self._on_change = on_change

    def failed(self, error: str, at: datetime) -> None:
        if self.writable:
            self.since = at
        self.writable, self.error = False, error
        if self._on_change is not None:
            self._on_change(False)

    def succeeded(self) -> None:
        if not self.writable:
            self.writable, self.error, self.since = True, None, None
            if self._on_change is not None:
                self._on_change(True)

    def as_json(self) -> dict[str, Any]:
        return {
            "writable": self.writable,
            "error": self.error,
            "since": self.since.isoformat() if self.since else None,
        }


class ControlService(Protocol):
    """The control operations the API offers; implemented by the master and the edge."""

    async def describe(self, edge: Document) -> dict[str, Any]: ...

    async def restore(self, edge: Document, by: str) -> dict[str, Any]: ...

    async def takeover(self, edge: Document, by: str) -> dict[str, Any]: ...

    async def repository(
        self, edge: Document, action: str, commit: str | None, reload: bool
    ) -> RepositoryOutcome: ...

    def controls(self, edge_id: str) -> bool:
        """Whether this server runs that location's devices now."""
        ...

    def health(self) -> dict[str, Any]:
        """What ``/api/ready`` adds about control: the store's writes, the link."""
        ...

    async def rotate_secret(self, edge: Document, grace_s: float) -> Rotation:
        """A new secret for the edge; every secret valid now stays valid ``grace_s``."""
        ...

    async def witness(
        self, edge: Document, *, nonce: str, proof: str, asker: str
    ) -> dict[str, Any]:
        """The signed answer to "do you control this location now?" (QuestionRefused)."""
        ...


class PlacementSource(Protocol):
    """Where requests about a location go (see :mod:`app.services.routing`)."""

    async def placement(self, location: str | None) -> Placement: ...


def control_id(edge_id: str) -> str:
    """The id of the ControlState document the master keeps for an edge."""
    return f"control::{edge_id}"


def restore_window(edge: Document) -> RestoreWindow | None:
    """The edge's restore window as its EdgeControl document states it; None: manual."""
    body = edge.body
    if not body.get("window_start"):
        return None
    return RestoreWindow(
        body["window_start"], float(body["window_length"]), body.get("timezone", "UTC")
    )


def failover_timeout(edge: Document) -> float:
    """Seconds the master waits for a lost edge before it takes over."""
    return float(edge.body.get("timeout", DEFAULT_FAILOVER_TIMEOUT_S))


def next_window(edge: Document, now: datetime) -> dict[str, str] | None:
    """The restore window open now, else the next one; None without a window."""
    window = restore_window(edge)
    if window is None:
        return None
    span = window.current_or_next(now)
    if span is None:
        return None
    return {"start": span.start.isoformat(), "end": span.end.isoformat()}


def describe(
    edge: Document,
    state: dict[str, Any],
    *,
    master_url: str | None,
    retry_after: float | None = None,
    link_error: tuple[str, datetime] | None = None,
    witness: dict[str, Any] | None = None,
    pending: dict[str, Any] | None = None,
    replication_error: str | None = None,
    replication_failing: tuple[datetime, int] | None = None,
    link: LinkReport | None = None,
    duplicate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of ``GET /api/edges/{id}/control``.

    ``link_error`` is why the edge's link was last refused or failed; ``witness``
    what this server last learnt from the other side's witness; ``pending`` a
    decision carried out that the store has not recorded yet; ``replication_error``
    what this server last had to leave out of the edge's replica (a document no link
    frame can carry, or on an edge why its replica cannot catch up), None while
    replication is whole; ``replication_failing`` since when the edge's catch-ups fail
    and how many times they were retried. ``link`` is the edge's own view of its link
    (``link_state``, ``master_alive``, ``link_state_since``: only an edge describing its
    own location has it); ``duplicate`` the master's record of another process refused
    as this edge while its link is held.
    """
    now = now_utc()
    return {
        "edge_id": edge.id,
        "controller": state.get("controller", "none"),
        "epoch": state.get("epoch", 0),
        "online": state.get("online", False),
        "failover_active": state.get("failover_active", False),
        "failover_time": state.get("failover_time"),
        "since": state.get("since"),
        "reason": state.get("reason", "the master has not yet decided about this edge"),
        "retry_after": retry_after,
        "next_restore_window": next_window(edge, now),
        "edge_url": edge.body.get("api_url"),
        "master_url": master_url,
        "replication_error": replication_error,
        "replication_error_since": (
            replication_failing[0].isoformat() if replication_failing else None
        ),
        "replication_retries": replication_failing[1] if replication_failing else None,
        "link_error": link_error[0] if link_error else None,
        "link_error_at": link_error[1].isoformat() if link_error else None,
        "witness": witness,
        "pending": pending,
        "link_state": link.state if link else None,
        "master_alive": link.master_alive if link else None,
        "link_state_since": link.since.isoformat() if link else None,
        "duplicate": duplicate,
    }


async def persisted_state(store: Store, edge_id: str) -> dict[str, Any]:
    """The ControlState document the master last wrote for the edge ({} when none)."""
    try:
        return dict((await store.get(control_id(edge_id))).body)
    except DocumentNotFound:
        return {}


async def history(store: Store, edge_id: str, limit: int) -> list[dict[str, Any]]:
    """The edge's ControlEvents, newest first."""
    page = await store.find("control_event", where={"edge_id": edge_id})
    events = [{"id": doc.id, **doc.body} for doc in page.items]
    events.sort(key=lambda event: str(event.get("at", "")), reverse=True)
    return events[:limit]
