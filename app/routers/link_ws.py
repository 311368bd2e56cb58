"""``WS /api/edge/link``: the control link edges open to the master (DESIGN §6)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from app.routers.deps import NodeDep

router = APIRouter()


@router.websocket("/api/edge/link")
async def edge_link(websocket: WebSocket, node: NodeDep) -> None:
    """The master serves its edges' links; an edge closes with ``CloseCode.NOT_MASTER``."""
    await node.links.serve(websocket)
