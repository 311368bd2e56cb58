"""The edge's answers to control questions (the API's ``ControlService``).

Decisions about control are the master's: the edge describes what replication brought
and its own link, answers its witness, and sends the rest to the master.
"""

from __future__ import annotations

from typing import Any

from app.edge.controller import EdgeController
from app.edge.follower import ReplicationFailure, SkippedChanges
from app.edge.linkstate import LinkEvents
from app.edge.uplink import CurrentLink
from app.edge.witness import MasterWitness
from app.errors import ControlledElsewhere, NotFound
from app.runtime.reports import RepositoryOutcome
from app.services.control import describe, persisted_state
from app.services.operations import Operations
from app.services.witness import answer
from app.settings import Settings
from app.store.base import Document, Store


class EdgeControl:
    """Describes this edge's control from its replica and its link; the master decides."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        operations: Operations,
        controller: EdgeController,
        link: LinkEvents,
        current: CurrentLink,
        witness: MasterWitness,
        skipped: SkippedChanges,
        failure: ReplicationFailure,
        *,
        edge_id: str,
    ) -> None:
        self._settings = settings
        self._store = store
        self._operations = operations
        self._controller = controller
        self._link = link
        self._current = current
        self._witness = witness
        self._skipped = skipped
        self._failure = failure
        self._edge_id = edge_id

    async def describe(self, edge: Document) -> dict[str, Any]:
        state = await persisted_state(self._store, edge.id)
        own = edge.id == self._edge_id
        report = self._witness.report
        failure = self._failure
        return describe(
            edge,
            state,
            master_url=self._settings.master_url,
            replication_error=(failure.error or self._skipped.error) if own else None,
            replication_failing=(failure.since, failure.retries) if own and failure.since else None,
            link_error=self._link.error if own else None,
            witness=report.as_json() if own and report else None,
        )

    def health(self) -> dict[str, Any]:
        error = self._link.error
        return {
            "link": {
                "connected": self._current.connected,
                "error": error[0] if error else None,
                "error_at": error[1].isoformat() if error else None,
            },
            "controls": self._controller.modules_running,
        }

    async def rotate_secret(self, edge: Document, grace_s: float) -> str:
        path = f"/api/edges/{edge.id}/secret"
        raise self._to_master(f"rotating the secret of edge {edge.id!r}", path)

    async def witness(
        self, edge: Document, *, nonce: str, proof: str, asker: str
    ) -> dict[str, Any]:
        secret = self._settings.edge_secret
        if edge.id != self._edge_id or not secret:
            raise NotFound(f"this server is not the edge {edge.id!r}")
        return answer(
            edge.id,
            nonce=nonce,
            proof=proof,
            asker=asker,
            secrets=[secret],
            controls=self._controller.modules_running,
            node=self._settings.node_name,
        )

    async def restore(self, edge: Document, by: str) -> dict[str, Any]:
        raise self._to_master(f"restoring edge {edge.id!r}", f"/api/edges/{edge.id}/restore")

    async def takeover(self, edge: Document, by: str) -> dict[str, Any]:
        raise self._to_master(f"a takeover of edge {edge.id!r}", f"/api/edges/{edge.id}/takeover")

    async def repository(
        self, edge: Document, action: str, commit: str | None, reload: bool
    ) -> RepositoryOutcome:
        if edge.id == self._edge_id:
            return await self._operations.repository(action, commit, reload)
        raise self._to_master("a repository request", f"/api/edges/{edge.id}/repository")

    def controls(self, edge_id: str) -> bool:
        return edge_id == self._edge_id and self._controller.modules_running

    def _to_master(self, what: str, path: str) -> ControlledElsewhere:
        master = (self._settings.master_url or "").rstrip("/")
        return ControlledElsewhere(f"{what} is decided by the master", location=master + path)
