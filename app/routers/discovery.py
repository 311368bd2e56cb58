"""``GET /api/systems/{id}/servers``: which servers can serve a system (discovery).

Answered by every server from what it knows (see :mod:`app.services.discovery`), never
routed elsewhere: a client asks whichever server it can reach. Any user may ask, and a
room panel's device key for its own system.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.routers.crud import problems
from app.routers.deps import NodeDep, RoomUser
from app.services.discovery import Discovery, SystemServers

router = APIRouter(tags=["discovery"])


class CandidateServer(BaseModel):
    node: str = Field(description="the server's `X-Engine-Node`: `master` or `edge:<id>`")
    role: Literal["master", "edge"]
    url: str = Field(description="its public base URL; its client websocket is `/api/ws` there")
    controls: bool = Field(description="whether it runs the system's modules now")


class Servers(BaseModel):
    """The servers that can serve a system, in the order to try them."""

    system_id: str
    name: str
    location: str | None = Field(description="the system's edge location; null: the master's")
    controller: Literal["master", "edge", "none"] = Field(
        description="who runs the system's location now (`none`: a handover is under way)"
    )
    epoch: int = Field(description="the location's control epoch: it grows at every change")
    online: bool | None = Field(
        description="whether the edge's control link is up, as the answering server knows"
    )
    failover: bool | None = Field(description="whether the master takes over a failed edge")
    failover_in: float | None = Field(
        description="seconds until the master takes over, while a failover is pending"
    )
    reason: str = Field(description="why the controller is who it is")
    servers: list[CandidateServer] = Field(
        description="where the system is served now first, then those that can take over"
    )
    answered_by: str = Field(description="the `X-Engine-Node` of the server that answered")


async def get_discovery(node: NodeDep) -> Discovery:
    settings = node.settings
    return Discovery(
        node.catalog,
        node.control,
        node_name=settings.node_name,
        base_url=settings.base_url,
        master_url=settings.master_url if settings.is_edge else settings.base_url,
    )


@router.get(
    "/api/systems/{system_id}/servers",
    operation_id="discoverSystemServers",
    summary="Which servers can serve the system, its controller first (discovery)",
    description="Answered by any server, master or edge, from what it knows now; never "
    "redirected. A client that loses its server asks the next one it knows.",
    response_model=Servers,
    responses=problems(401, 403, 404),
)
async def servers(
    system_id: str,
    discovery: Annotated[Discovery, Depends(get_discovery)],
    _user: RoomUser,
) -> JSONResponse:
    answer = await discovery.servers(system_id)
    return JSONResponse(_servers(answer).model_dump(), headers={"Cache-Control": "no-store"})


def _servers(answer: SystemServers) -> Servers:
    return Servers(
        system_id=answer.system_id,
        name=answer.name,
        location=answer.location,
        controller=answer.controller,
        epoch=answer.epoch,
        online=answer.online,
        failover=answer.failover,
        failover_in=answer.failover_in,
        reason=answer.reason,
        servers=[
            CandidateServer(node=c.node, role=c.role, url=c.url, controls=c.controls)
            for c in answer.servers
        ],
        answered_by=answer.answered_by,
    )
