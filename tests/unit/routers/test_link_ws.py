"""``WS /api/edge/link`` is the master's: an edge refuses it with its own close code."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from app.link import CloseCode
from app.main import create_app
from app.settings import Settings


async def test_an_edge_refuses_control_links(settings: Settings) -> None:
    edge = settings.model_copy(
        update={"edge_id": "edge-1", "master_url": "http://127.0.0.1:9", "edge_secret": "s"}
    )
    app = create_app(edge)
    sent: list[dict[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/api/edge/link",
        "raw_path": b"/api/edge/link",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 5000),
        "server": ("edge.test", 80),
        "subprotocols": [],
    }
    await app(scope, receive, send)
    assert sent[-1]["type"] == "websocket.close"
    assert sent[-1]["code"] == CloseCode.NOT_MASTER
