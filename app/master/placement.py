"""Where the master sends a client's request about a location (see app.services.routing)."""

from __future__ import annotations

from app.control.clock import now_utc
from app.control.supervisor import retry_after
from app.master.edges import SupervisedEdges
from app.master.links import LinkTable
from app.services.modules import ModuleService
from app.services.routing import Placement
from app.store.base import DocumentNotFound, Store


class MasterPlacement:
    """The master runs its own location and any edge it holds; an edge runs the rest."""

    def __init__(
        self, store: Store, modules: ModuleService, edges: SupervisedEdges, links: LinkTable
    ) -> None:
        self._store = store
        self._modules = modules
        self._edges = edges
        self._links = links

    async def placement(self, location: str | None) -> Placement:
        if location is None or self._modules.runs(location):
            return Placement("here")
        name = f"edge {location!r}"
        supervisor = self._edges.get(location)
        linked = self._links.get(location) is not None
        if supervisor is None:
            try:
                url = (await self._store.get(location)).body.get("api_url")
            except DocumentNotFound:
                url = None
            return Placement(
                "elsewhere",
                name,
                url,
                linked,
                via_link=linked,
                reason="the master has not yet seen this edge",
            )
        state = supervisor.state
        return Placement(
            "elsewhere",
            name,
            # Kept by the supervised edges in line with the edge's document, as the
            # topology is: no store read on every request.
            self._edges.api_url(location),
            reachable=linked,
            via_link=linked,
            reason=state.control.reason,
            retry_after=retry_after(state, now_utc()),
        )
