"""Where an edge sends a client's request (see app.services.routing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.services.routing import Placement

if TYPE_CHECKING:
    from app.edge.role import EdgeRole


class EdgePlacement:
    """An edge answers for its own location while it runs it; the master answers the rest."""

    def __init__(self, role: EdgeRole) -> None:
        self._role = role

    async def placement(self, location: str | None) -> Placement:
        role = self._role
        if location == role.edge_id and role.control.modules_running:
            return Placement("here")
        master_url = role.services.settings.master_url
        return Placement(
            "elsewhere",
            "the master",
            master_url.rstrip("/") if master_url else None,
            reachable=True,
            reason="the master controls this location" if location == role.edge_id else "",
        )
