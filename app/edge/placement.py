"""Where an edge sends a client's request (see app.services.routing)."""

from __future__ import annotations

from app.edge.controller import EdgeController
from app.services.routing import Placement


class EdgePlacement:
    """An edge answers for its own location while it runs it; the master answers the rest."""

    def __init__(self, controller: EdgeController, *, edge_id: str, master_url: str | None) -> None:
        self._controller = controller
        self._edge_id = edge_id
        self._master_url = master_url.rstrip("/") if master_url else None

    async def placement(self, location: str | None) -> Placement:
        if location == self._edge_id and self._controller.modules_running:
            return Placement("here")
        return Placement(
            "elsewhere",
            "the master",
            self._master_url,
            reachable=True,
            reason="the master controls this location" if location == self._edge_id else "",
        )
