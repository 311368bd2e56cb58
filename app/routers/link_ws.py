"""``WS /api/edge/link``: the control link edges open to the master (DESIGN §6)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from app.routers.deps import get_node

router = APIRouter()


@router.websocket("/api/edge/link")
async def edge_link(websocket: WebSocket) -> None:
    """The master serves its edges' links; an edge closes with ``CLOSE_NOT_MASTER``."""
    await get_node(websocket).links.serve(websocket)
