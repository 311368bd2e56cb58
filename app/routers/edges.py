"""Edge locations: CRUD plus the shared secret (shown once, rotated on demand)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from app.models import EdgeCreated, EdgeSecret, ValidSecret
from app.node import Node
from app.routers.crud import crud_router, problems
from app.routers.deps import AdminUser, CatalogDep, ControlDep
from app.services.catalog import EDGE
from app.store.base import Document


async def _issue_secret(node: Node, doc: Document) -> dict[str, Any]:
    return {"secret": await node.secrets.issue(doc.id)}


router = APIRouter()


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: float = Field(
        default=86400.0,
        ge=0,
        description="seconds every secret valid now stays valid at least, unless the edge "
        "uses a newer one first; 0 revokes them now and closes a link authenticated with one",
    )


@router.post(
    "/edges/{edge_id}/secret",
    operation_id="rotateEdgeSecret",
    summary="Issue a new shared secret for an edge; the secrets valid now stay valid for a grace",
    tags=["edges"],
    responses=problems(401, 403, 404, 422),
)
async def rotate_secret(
    edge_id: str,
    control: ControlDep,
    catalog: CatalogDep,
    _admin: AdminUser,
    body: Annotated[SecretRotation | None, Body()] = None,
) -> EdgeSecret:
    edge = await catalog.get(EDGE, edge_id)
    grace_s = (body or SecretRotation()).grace_s
    rotation = await control.rotate_secret(edge, grace_s)
    valid = [ValidSecret(**entry) for entry in rotation.valid]
    return EdgeSecret(id=edge_id, secret=rotation.secret, valid=valid)


router.include_router(crud_router(EDGE, after_create=_issue_secret, create_model=EdgeCreated))
