"""Control of each edge's devices: who controls them, handovers, history, repository."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.errors import Unauthorized, Unavailable
from app.models import ControlDocument, ControlEvent, RepositoryResult
from app.routers.conditional import cached_json
from app.routers.crud import NOT_MODIFIED, problems
from app.routers.deps import CatalogDep, ControlDep, CurrentUser, NodeDep
from app.services.auth import require_edge_admin
from app.services.catalog import EDGE
from app.services.control import history
from app.services.witness import QuestionRefused
from app.store.base import Document

router = APIRouter(prefix="/edges/{edge_id}", tags=["control"])


async def administered_edge(edge_id: str, catalog: CatalogDep, user: CurrentUser) -> Document:
    """The edge in the path, which the caller may administer (401, 404, then 403)."""
    edge = await catalog.get(EDGE, edge_id)
    require_edge_admin(user, edge)
    return edge


AdministeredEdge = Annotated[Document, Depends(administered_edge)]


def answer(content: Any) -> JSONResponse:
    """``content`` as the service built it: the route's model documents it, and fields
    it does not name yet pass through (app/models.py, API answers)."""
    return JSONResponse(jsonable_encoder(content))


class RepositoryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["pull", "reset", "status"]
    commit: str | None = None
    reload: bool = False


@router.get(
    "/control",
    operation_id="getEdgeControl",
    summary="Get who controls the edge's devices now, and where clients reach both servers",
    description="Besides the control state: on an edge about its own location, "
    "`link_state` (`up`, `closed`, `refused`, `tls` or `unreachable`), `master_alive` and "
    "`link_state_since`, and while its link is down what the edge itself knows "
    "(`controller`, `online`, `reason`); on the master, `duplicate` while another process "
    "is refused as the edge (`instance`, `address`, `at`, `refusals`, `linked_instance`).",
    response_model=ControlDocument,
    responses={**NOT_MODIFIED, **problems(401, 404)},
)
async def get_control(
    request: Request, edge_id: str, control: ControlDep, catalog: CatalogDep, _user: CurrentUser
) -> Response:
    edge = await catalog.get(EDGE, edge_id)
    return cached_json(request, await control.describe(edge), cache_control="no-cache")


@router.post(
    "/restore",
    operation_id="restoreEdge",
    summary="Hand control back to a connected edge now",
    description="Answers the control document once the edge runs its devices. 409 when the "
    "edge is not connected; 503 (Retry-After) when it does not confirm the change.",
    response_model=ControlDocument,
    responses=problems(401, 403, 404, 409, 503),
)
async def restore(edge: AdministeredEdge, control: ControlDep, user: CurrentUser) -> Response:
    return answer(await control.restore(edge, by=user.user_id))


@router.post(
    "/takeover",
    operation_id="takeoverEdge",
    summary="Have the master take control of the edge's devices now (planned maintenance)",
    description="Answers the control document once the master runs the devices. 503 "
    "(Retry-After) when a connected edge does not confirm the change.",
    response_model=ControlDocument,
    responses=problems(401, 403, 404, 503),
)
async def takeover(edge: AdministeredEdge, control: ControlDep, user: CurrentUser) -> Response:
    return answer(await control.takeover(edge, by=user.user_id))


@router.get(
    "/events",
    operation_id="listEdgeEvents",
    summary="List the history of control decisions, newest first",
    response_model=list[ControlEvent],
    responses=problems(401, 404),
)
async def events(
    edge_id: str,
    node: NodeDep,
    catalog: CatalogDep,
    _user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    await catalog.get(EDGE, edge_id)
    return answer(await history(node.store, edge_id, limit))


@router.get(
    "/controller",
    operation_id="probeEdgeController",
    summary="Probe whether this server controls the location now: 200, else 503",
    responses=problems(404, 503),
)
@router.head(
    "/controller",
    operation_id="headEdgeController",
    summary="Probe the controller without a body",
    responses=problems(404, 503),
)
async def controller_probe(
    edge_id: str, node: NodeDep, control: ControlDep, catalog: CatalogDep
) -> Response:
    await catalog.get(EDGE, edge_id)
    if control.controls(edge_id):
        return Response(status_code=200, headers={"Cache-Control": "no-store"})
    raise Unavailable(f"this server ({node.settings.node_name}) does not control edge {edge_id!r}")


class WitnessAnswer(BaseModel):
    edge_id: str
    node: str = Field(description="who answers: `master` or `edge:<id>`")
    controls: bool = Field(description="whether the answering server runs the location now")
    nonce: str
    proof: str = Field(
        description="hex HMAC-SHA256 with the edge's secret over "
        '`["engine witness v1: answer", edge_id, nonce, controls, node]` (JSON)'
    )
    at: str


@router.get(
    "/witness",
    operation_id="askEdgeWitness",
    summary="Ask whether this server controls the location now (signed with the secret)",
    description="Asked by the other side of a link that is down before it takes control "
    "(DESIGN §5). `proof` is the hex HMAC-SHA256 with the edge's secret over "
    '`["engine witness v1: question", edge_id, nonce, asker]` (JSON). Needs no token: '
    "a question without the right proof gets 401 and learns nothing.",
    responses=problems(401, 404, 503),
)
async def witness(
    edge_id: str,
    control: ControlDep,
    catalog: CatalogDep,
    nonce: Annotated[str, Query(min_length=16, max_length=128)],
    proof: Annotated[str, Query(min_length=1, max_length=128)],
    asker: Annotated[str, Query(min_length=1, max_length=200)],
) -> Response:
    edge = await catalog.get(EDGE, edge_id)
    try:
        body = await control.witness(edge, nonce=nonce, proof=proof, asker=asker)
    except QuestionRefused:
        raise Unauthorized("the question's proof is wrong") from None
    return JSONResponse(WitnessAnswer(**body).model_dump(), headers={"Cache-Control": "no-store"})


@router.post(
    "/repository",
    operation_id="edgeRepository",
    summary="Run a repository request (pull, reset, status) on the location's server",
    response_model=RepositoryResult,
    responses=problems(401, 403, 404, 409, 503),
)
async def repository(
    body: RepositoryRequest, edge: AdministeredEdge, control: ControlDep
) -> Response:
    return answer(await control.repository(edge, body.action, body.commit, body.reload))
