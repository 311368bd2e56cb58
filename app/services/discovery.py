"""Discovery: which servers can serve a system, in the order a client should try them.

A browser cannot follow a ``307`` to another origin with its credentials, and a page
cached on a device must find its room's server when the server that served it is gone.
So any server, master or edge, answers for any system (``GET /api/systems/{id}/servers``):
the controller's public URL first, then the servers that can take over, and the epoch
of the location's control. It answers from what it knows now — the master from its
supervisors, an edge from its replica and from whether it runs the location itself —
so a client may ask whichever server it can reach.

The ranking is a pure function over that knowledge (:func:`rank`); :class:`Discovery`
gathers it. Each server in the answer is a candidate with a role, so the list can grow
to several masters without changing its shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.services.catalog import EDGE, SYSTEM, Catalog
from app.services.control import ControlService

Role = Literal["master", "edge"]
Controller = Literal["master", "edge", "none"]

#: The node name (``X-Engine-Node``) of the master.
MASTER_NODE = "master"


def edge_node(edge_id: str) -> str:
    """The node name (``X-Engine-Node``) of an edge."""
    return f"edge:{edge_id}"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A server that can serve the system: where clients reach it, and whether it runs it."""

    node: str
    role: Role
    url: str
    controls: bool


@dataclass(frozen=True, slots=True)
class SystemServers:
    """The discovery answer for one system."""

    system_id: str
    name: str
    #: The edge location the system belongs to; None: the master's own.
    location: str | None
    controller: Controller
    epoch: int
    #: Whether the edge's control link is up, as the answering server last knew.
    online: bool | None
    #: Whether the master takes over when the edge fails.
    failover: bool | None
    #: Seconds until a pending failover, when one is pending.
    failover_in: float | None
    reason: str
    #: Where to go: the first is where the system is served now, then the others.
    servers: tuple[Candidate, ...]
    answered_by: str


@dataclass(frozen=True, slots=True)
class Knowledge:
    """What the answering server knows about one system's location, now."""

    #: The answering server's node name.
    here: str
    #: Whether the answering server runs the location's modules now.
    here_runs: bool
    master_url: str | None
    #: The edge's public URL (its ``api_url``); None for the master's rooms or when unset.
    edge_url: str | None = None
    #: The location's control document (``GET /api/edges/{id}/control``); None: the
    #: master's own rooms.
    control: Mapping[str, Any] | None = None
    failover: bool | None = None


def rank(system_id: str, name: str, location: str | None, known: Knowledge) -> SystemServers:
    """The servers that can serve a system, the one that serves it now first.

    The answering server trusts itself about itself: when it runs the location it is
    the controller, and when the control document names it but it runs nothing (a
    handover under way) the controller is ``none`` for now.
    """
    master = (
        Candidate(MASTER_NODE, "master", known.master_url, controls=False)
        if known.master_url
        else None
    )
    if location is None:
        return SystemServers(
            system_id=system_id,
            name=name,
            location=None,
            controller="master",
            epoch=0,
            online=None,
            failover=None,
            failover_in=None,
            reason="the master runs its own rooms",
            servers=(Candidate(master.node, "master", master.url, True),) if master else (),
            answered_by=known.here,
        )
    control = known.control or {}
    named: Controller = control.get("controller", "none")
    nodes = {"edge": edge_node(location), "master": MASTER_NODE}
    controller: Controller
    if known.here_runs:
        controller = "edge" if known.here == edge_node(location) else "master"
    elif nodes.get(named) == known.here:
        controller = "none"
    else:
        controller = named
    edge = (
        Candidate(edge_node(location), "edge", known.edge_url, controller == "edge")
        if known.edge_url
        else None
    )
    if master is not None:
        master = Candidate(master.node, "master", master.url, controller == "master")
    order = (master, edge) if controller == "master" else (edge, master)
    return SystemServers(
        system_id=system_id,
        name=name,
        location=location,
        controller=controller,
        epoch=int(control.get("epoch", 0)),
        online=control.get("online"),
        failover=known.failover,
        failover_in=control.get("retry_after"),
        reason=str(control.get("reason", "")),
        servers=tuple(server for server in order if server is not None),
        answered_by=known.here,
    )


class Discovery:
    """Answers discovery for any system from this server's catalog and control service."""

    def __init__(
        self,
        catalog: Catalog,
        control: ControlService,
        *,
        node_name: str,
        base_url: str,
        master_url: str | None,
    ) -> None:
        self._catalog = catalog
        self._control = control
        self._here = node_name
        self._base_url = base_url
        self._master_url = master_url.rstrip("/") if master_url else None

    async def servers(self, system_id: str) -> SystemServers:
        """The discovery answer; ``NotFound`` when there is no such system."""
        system = await self._catalog.get(SYSTEM, system_id)
        name = str(system.body.get("name", ""))
        location: str | None = system.body.get("edge_control_id")
        if location is None:
            known = Knowledge(self._here, self._here == MASTER_NODE, self._master_url)
            return rank(system_id, name, None, known)
        edge = await self._catalog.get(EDGE, location)
        edge_url = edge.body.get("api_url") or (
            self._base_url if self._here == edge_node(location) else None
        )
        known = Knowledge(
            here=self._here,
            here_runs=self._control.controls(location),
            master_url=self._master_url,
            edge_url=edge_url.rstrip("/") if edge_url else None,
            control=await self._control.describe(edge),
            failover=bool(edge.body.get("failover", True)),
        )
        return rank(system_id, name, location, known)
