"""``WS /api/edge/link``: the control link edges open to the master (DESIGN §6)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from app.routers.deps import get_node

router = APIRouter()

#: Close code when the link endpoint is asked of a server that is not the master.
CLOSE_NOT_MASTER = 4404


@router.websocket("/api/edge/link")
async def edge_link(websocket: WebSocket) -> None:
    node = get_node(websocket)
    links = getattr(node.role, "links", None)
    if links is None:
        await websocket.close(code=CLOSE_NOT_MASTER, reason="not the master")
        return
    await links.serve(websocket)
