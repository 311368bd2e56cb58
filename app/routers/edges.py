"""Edge locations: CRUD plus the shared secret (shown once, rotated on demand)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.models import EdgeCreated, EdgeSecret
from app.node import Node
from app.routers.crud import crud_router, problems
from app.routers.deps import AdminUser, CatalogDep, NodeDep
from app.services.catalog import EDGE
from app.store.base import Document


async def _issue_secret(node: Node, doc: Document) -> dict[str, Any]:
    return {"secret": await node.secrets.issue(doc.id)}


router = APIRouter()


@router.post(
    "/edges/{edge_id}/secret",
    operation_id="rotateEdgeSecret",
    summary="Issue a new shared secret for an edge (the old one stops working)",
    tags=["edges"],
    responses=problems(401, 403, 404),
)
async def rotate_secret(
    edge_id: str, node: NodeDep, catalog: CatalogDep, _admin: AdminUser
) -> EdgeSecret:
    await catalog.get(EDGE, edge_id)
    return EdgeSecret(id=edge_id, secret=await node.secrets.issue(edge_id))


router.include_router(crud_router(EDGE, after_create=_issue_secret, create_model=EdgeCreated))
