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
from app.link import LinkReport
from app.runtime.reports import RepositoryOutcome
from app.services.control import describe, persisted_state
from app.services.operations import Operations
from app.services.secrets import Rotation
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
        instance_id: str,
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
        self._instance_id = instance_id

    async def describe(self, edge: Document) -> dict[str, Any]:
        state = await persisted_state(self._store, edge.id)
        if edge.id != self._edge_id:
            return describe(edge, state, master_url=self._settings.master_url)
        link, failure = self._link.report, self._failure
        # The master's witness is asked while the link is down; once it is up, what it
        # said is history.
        report = None if self._current.connected else self._witness.report
        if link.state != "up":
            state = {**state, **self._unlinked(state, link)}
        return describe(
            edge,
            state,
            master_url=self._settings.master_url,
            replication_error=failure.error or self._skipped.error,
            replication_failing=(failure.since, failure.retries) if failure.since else None,
            link_error=(link.error, link.error_at) if link.error and link.error_at else None,
            witness=report.as_json() if report else None,
            link=link,
        )

    def _unlinked(self, state: dict[str, Any], link: LinkReport) -> dict[str, Any]:
        """What this edge knows of its location while its link is down.

        The replicated ControlState is the master's last word before the link went, not
        the truth now: the edge says whether its own modules run, and what the master's
        witness last said (else the master's last word, if that named the master).
        """
        running = self._controller.modules_running
        witness = self._witness.report
        if running:
            controller = "edge"
        elif witness is not None and witness.verified:
            controller = "master" if witness.controls else "none"
        else:
            controller = "master" if state.get("controller") == "master" else "none"
        modules = "run here" if running else "are stopped here"
        why = link.error or "no attempt has failed yet"
        last_word = state.get("reason", "nothing yet")
        return {
            "controller": controller,
            "online": False,
            "reason": f"this edge's link to the master is {link.state} ({why}); the "
            f"location's modules {modules}; the master's last word: {last_word}",
        }

    def health(self) -> dict[str, Any]:
        link = self._link.report
        return {
            "link": {
                "connected": self._current.connected,
                "error": link.error,
                "error_at": link.error_at.isoformat() if link.error_at else None,
                "link_state": link.state,
                "master_alive": link.master_alive,
                "link_state_since": link.since.isoformat(),
                "instance_id": self._instance_id,
            },
            "controls": self._controller.modules_running,
        }

    async def rotate_secret(self, edge: Document, grace_s: float) -> Rotation:
        path = f"/api/edges/{edge.id}/secret"
        raise self._to_master(f"rotating the secret of edge {edge.id!r}", path)

    async def witness(
        self, edge: Document, *, nonce: str, proof: str, asker: str
    ) -> dict[str, Any]:
        secret = self._settings.edge_secret
        if edge.id != self._edge_id or not secret:
            raise NotFound(f"this server is not the edge {edge.id!r}")
        controls = self._controller.modules_running
        answered = answer(
            edge.id,
            nonce=nonce,
            proof=proof,
            asker=asker,
            secrets=[secret],
            controls=controls,
            node=self._settings.node_name,
        )
        if asker == "master":
            self._witness.master_asked(controls=controls)
        return answered

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
