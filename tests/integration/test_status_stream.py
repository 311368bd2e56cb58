"""The status stream over real HTTP: a snapshot at once, changes, and an end on revocation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.support.engine import EngineProcess


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """``(event, data)`` for each server-sent event; ``("comment", None)`` for keep-alives."""
    block: list[str] = []
    async for line in response.aiter_lines():
        if line:
            block.append(line)
            continue
        if block and block[0].startswith(":"):
            yield "comment", None
        elif block:
            fields = dict(entry.split(": ", 1) for entry in block)
            yield fields["event"], json.loads(fields["data"])
        block = []


async def test_the_stream_follows_changes_and_ends_when_the_token_is_revoked(
    client: httpx.AsyncClient, master: EngineProcess
) -> None:
    user = (await client.post("/api/users", json={"name": "Operator"})).json()
    issued = (await client.post(f"/api/users/{user['id']}/tokens", json={"name": "page"})).json()
    headers = {"Authorization": f"Bearer {issued['token']}"}

    async with httpx.AsyncClient(base_url=master.url, timeout=10) as http:
        async with http.stream("GET", "/api/status/stream", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events(response)
            kind, first = await anext(stream)
            assert (kind, first["locations"], first["user"]["admin"]) == ("status", [], False)

            edge = (await client.post("/api/edges", json={"name": "Branch"})).json()
            kind, changed = await anext(stream)
            assert kind == "status"
            [location] = changed["locations"]
            assert (location["id"], location["can_operate"]) == (edge["id"], False)

            revoke = await client.delete(f"/api/users/{user['id']}/tokens/{issued['id']}")
            assert revoke.status_code == 204
            # Snapshots may still come (the master's first decision about the new edge).
            kind, error = await anext(stream)
            while kind == "status":
                kind, error = await anext(stream)
            assert (kind, error["status"]) == ("error", 401)
            assert [item async for item in stream] == []  # the server ended the stream
