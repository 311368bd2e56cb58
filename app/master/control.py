"""The master's answers to control questions (the API's ``ControlService``)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.control.clock import now_utc
from app.control.state import control_document
from app.control.supervisor import RestoreRequested, TakeoverRequested, retry_after
from app.link import LinkClosed
from app.link.ops import REPOSITORY
from app.master.edges import SupervisedEdges
from app.master.links import LinkTable
from app.master.requests import ReplicaFeed
from app.master.witnesses import WitnessAsker
from app.node import Services
from app.runtime.reports import RepositoryOutcome
from app.services.catalog import EDGE
from app.services.control import StoreHealth, describe, persisted_state
from app.services.modules import ModuleService
from app.services.secrets import Rotation
from app.services.witness import answer
from app.store.base import Document


class MasterControl:
    """Describes and changes who controls each edge, from the supervisors' state."""

    def __init__(
        self,
        services: Services,
        modules: ModuleService,
        edges: SupervisedEdges,
        links: LinkTable,
        witnesses: WitnessAsker,
        feed: ReplicaFeed,
        store_health: StoreHealth,
    ) -> None:
        self._services = services
        self._modules = modules
        self._edges = edges
        self._links = links
        self._witnesses = witnesses
        self._feed = feed
        self._store_health = store_health

    async def describe(self, edge: Document) -> dict[str, Any]:
        supervisor = self._edges.get(edge.id)
        error = self._links.link_errors.get(edge.id)
        report = self._witnesses.reports.get(edge.id)
        duplicate = self._links.duplicates.current(edge.id, now_utc())
        extra: dict[str, Any] = {
            "master_url": self._services.settings.base_url,
            "link_error": (error.reason, error.at) if error else None,
            "witness": report.as_json() if report else None,
            "replication_error": self._feed.errors.get(edge.id),
            "duplicate": duplicate.as_json() if duplicate else None,
        }
        if supervisor is None:
            state = await persisted_state(self._services.store, edge.id)
            return describe(edge, state, **extra)
        control, now = supervisor.state.control, now_utc()
        unrecorded = supervisor.unrecorded
        return describe(
            edge,
            control_document(control),
            retry_after=retry_after(supervisor.state, now),
            pending=unrecorded.as_json() if unrecorded else None,
            **extra,
        )

    def health(self) -> dict[str, Any]:
        supervisors = self._edges.supervisors.values()
        unrecorded = sum(1 for s in supervisors if s.unrecorded is not None)
        return {"store": self._store_health.as_json(), "decisions_unrecorded": unrecorded}

    async def rotate_secret(self, edge: Document, grace_s: float) -> Rotation:
        secrets = self._services.secrets
        secret = await secrets.issue(edge.id, grace_s)
        await self._links.revoke(edge.id)
        if grace_s > 0:
            self._services.tasks.spawn(
                self._revoke_after(edge.id, grace_s),
                name=f"revoking the previous secret of edge {edge.id}",
                forever=False,
            )
        credentials = await secrets.credentials(edge.id)
        in_use = self._links.secret_used(edge.id)
        valid = credentials.validity(now_utc(), in_use=in_use) if credentials else []
        return Rotation(secret, valid)

    async def _revoke_after(self, edge_id: str, grace_s: float) -> None:
        """The grace ended: a link still on the previous secret closes now."""
        await asyncio.sleep(grace_s + 0.05)
        await self._links.revoke(edge_id)

    async def witness(
        self, edge: Document, *, nonce: str, proof: str, asker: str
    ) -> dict[str, Any]:
        answered = answer(
            edge.id,
            nonce=nonce,
            proof=proof,
            asker=asker,
            secrets=await self._services.secrets.valid(edge.id),
            controls=self.controls(edge.id),
            node=self._services.settings.node_name,
        )
        if asker == f"edge:{edge.id}":
            self._witnesses.edge_asked(edge.id)
        return answered

    async def restore(self, edge: Document, by: str) -> dict[str, Any]:
        await self._edges.supervisor(edge.id).handle(RestoreRequested(now_utc(), by=by))
        return await self.describe(edge)

    async def takeover(self, edge: Document, by: str) -> dict[str, Any]:
        await self._edges.supervisor(edge.id).handle(TakeoverRequested(now_utc(), by=by))
        return await self.describe(edge)

    async def repository(
        self, edge: Document, action: str, commit: str | None, reload: bool
    ) -> RepositoryOutcome:
        """Run a repository request on the edge's server; record the commit it reports."""
        link = self._links.get(edge.id)
        if link is None:
            raise LinkClosed(f"edge {edge.id!r}")
        result = await REPOSITORY.call(link, {"action": action, "commit": commit, "reload": reload})
        if result.get("commit") and result["commit"] != edge.body.get("commit"):
            await self._services.catalog.set_maintained(EDGE, edge.id, commit=result["commit"])
        return result

    def controls(self, edge_id: str) -> bool:
        return self._modules.runs(edge_id)
