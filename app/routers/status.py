"""The operator's status page at ``/``, its assets, and the snapshot it shows (JSON and live).

The page is static HTML, CSS and JavaScript shipped in :mod:`app.status`; it signs in
with a bearer token kept in the browser session and reads
``GET /api/status/stream``, server-sent events carrying a snapshot whenever one
changes. The stream is read with ``fetch`` so the token travels in the
``Authorization`` header, never in a URL that could reach a log.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path
from typing import Annotated, cast

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.staticfiles import StaticFiles

from app.errors import EngineError
from app.models import StatusSnapshot
from app.node import Node
from app.routers.crud import problems
from app.routers.deps import CurrentUser, NodeDep, access_token, bearer
from app.routers.problems import status_of
from app.services.auth import Principal
from app.services.status import StatusBoard

#: Where the page's own assets are served from.
ASSETS_URL = "/status-assets"
STATIC_DIR = Path(str(files("app.status") / "static"))

router = APIRouter(tags=["status"])


def install(app: FastAPI, node: Node) -> None:
    """Add the page, its assets and the status endpoints to ``app``."""
    app.state.status_board = StatusBoard(
        node.store,
        node.catalog,
        node.control,
        node_name=node.settings.node_name,
        edge_id=node.settings.edge_id,
    )
    app.mount(ASSETS_URL, StaticFiles(directory=STATIC_DIR), name="status-assets")
    app.include_router(router)


async def get_board(request: Request) -> StatusBoard:
    return cast(StatusBoard, request.app.state.status_board)


BoardDep = Annotated[StatusBoard, Depends(get_board)]


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        # Nothing but this server: no inline code, no other origin, no framing.
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
        },
    )


@router.get(
    "/api/status",
    operation_id="getStatus",
    summary="Get every location this server shows: controller, countdown, window, decisions",
    response_model=StatusSnapshot,
    responses=problems(401),
)
async def status(board: BoardDep, user: CurrentUser) -> Response:
    # A thousand locations make a megabyte: written by orjson, not walked by the framework.
    return Response(orjson.dumps(await board.snapshot(user)), media_type="application/json")


@router.get(
    "/api/status/stream",
    operation_id="streamStatus",
    summary="Stream the status snapshot as server-sent events: now, then at every change",
    description=(
        "`event: status` carries the snapshot of `GET /api/status`, sent at once and"
        " whenever it changes (looked for four times a second); a comment line every"
        " 15 s keeps a quiet stream alive; `event: error` (problem details) ends the"
        " stream when the token stops being valid."
    ),
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **problems(401)},
)
async def stream(
    board: BoardDep,
    node: NodeDep,
    _user: CurrentUser,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    query_token: Annotated[str | None, Depends(access_token)],
) -> StreamingResponse:
    token = credentials.credentials if credentials else query_token

    async def current_user() -> Principal:
        return await node.auth.authenticate(token)

    async def events() -> AsyncIterator[str]:
        try:
            async for snapshot in board.changes(current_user):
                if snapshot is None:
                    yield ": still here\n\n"
                else:
                    yield f"event: status\ndata: {orjson.dumps(snapshot).decode()}\n\n"
        except EngineError as exc:
            status, title = status_of(exc)
            error = {"status": status, "title": title, "detail": exc.detail}
            yield f"event: error\ndata: {json.dumps(error)}\n\n"

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
