"""Where the master sends a client's request about a location (see app.services.routing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.control.clock import now_utc
from app.control.supervisor import retry_after
from app.services.routing import Placement
from app.store.base import DocumentNotFound

if TYPE_CHECKING:
    from app.master.role import MasterRole


class MasterPlacement:
    """The master runs its own location and any edge it holds; an edge runs the rest."""

    def __init__(self, role: MasterRole) -> None:
        self._role = role

    async def placement(self, location: str | None) -> Placement:
        role = self._role
        if location is None or role.modules.runs(location):
            return Placement("here")
        name = f"edge {location!r}"
        supervisor = role.supervisors.get(location)
        try:
            url = (await role.services.store.get(location)).body.get("api_url")
        except DocumentNotFound:
            url = None
        linked = role.links.get(location) is not None
        if supervisor is None:
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
            url,
            reachable=linked,
            via_link=linked,
            reason=state.control.reason,
            retry_after=retry_after(state, now_utc()),
        )
