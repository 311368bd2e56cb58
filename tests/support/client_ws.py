"""Helpers for tests that talk to ``WS /api/ws`` like a front end."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection


async def next_message(
    websocket: ClientConnection, kind: str, timeout: float = 10
) -> dict[str, Any]:
    """The next message of ``type`` ``kind``, skipping others."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await websocket.recv())
            if message.get("type") == kind:
                return dict(message)


async def bind(websocket: ClientConnection, request_id: int, sys: str, mod: str, name: str) -> None:
    """Bind to ``mod``'s status variable ``name`` in ``sys`` and wait for the success."""
    await websocket.send(
        json.dumps(
            {"id": request_id, "cmd": "bind", "sys": sys, "mod": mod, "index": 1, "name": name}
        )
    )
    reply = await next_message(websocket, "success")
    assert reply["id"] == request_id, reply
