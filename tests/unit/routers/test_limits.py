"""Oversized bodies and unreadable URLs: refused with a clear 4xx before anything reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.routers import limits
from app.settings import Settings
from tests.unit.routers.test_crud import assert_problem, create

LIMIT = 256 * 1024


async def test_a_body_over_the_limit_is_413_naming_it(api: httpx.AsyncClient) -> None:
    body = {"name": "Big", "settings": {"blob": "x" * (2 * 1024 * 1024)}}
    response = await api.post("/api/systems", json=body)
    assert_problem(response, 413)
    assert str(LIMIT) in response.json()["detail"]
    assert "ENGINE_MAX_DOCUMENT_BYTES" in response.json()["detail"]
    assert (await api.get("/api/systems")).json()["total"] == 0


async def test_a_streamed_body_is_cut_off_at_the_limit(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the limit the rest is read and dropped, so the client hears the 413 — but
    only up to the drain limit: a body larger still is never read to its end."""
    monkeypatch.setattr(limits, "DRAIN_LIMIT", 512 * 1024)
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"name": "Streamed", "settings": {"blob": "'
        for _ in range(64):  # 4 MiB if it were read whole
            sent += 1
            yield b"x" * 65536
        yield b'"}}'

    response = await api.post(
        "/api/systems", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 413)
    assert sent < 64, "the body was read to its end"


async def test_a_patch_that_would_grow_a_document_past_the_limit_is_413(
    api: httpx.AsyncClient,
) -> None:
    system = await create(api, "/api/systems", {"name": "Growing"})
    half = {"a": "x" * (LIMIT // 2 + 100)}
    first = await api.patch(f"/api/systems/{system['id']}", json={"settings": half})
    assert first.status_code == 200, first.text
    second = await api.patch(
        f"/api/systems/{system['id']}", json={"settings": {"b": "y" * (LIMIT // 2 + 100)}}
    )
    assert_problem(second, 413)
    assert second.json()["limit"] == LIMIT
    assert second.json()["size"] > LIMIT
    kept = await api.get(f"/api/systems/{system['id']}")
    assert kept.json()["settings"] == half


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "a\u0000b"}, "name"),
        ({"name": "ok", "settings": {"k": ["v", "\u0000"]}}, "settings.k[1]"),
        ({"name": "ok", "settings": {"k\u0000": 1}}, "settings"),
    ],
)
async def test_nul_characters_in_a_document_are_422(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    assert_problem(await api.post("/api/systems", json=body), 422, field)


async def test_deep_nesting_is_422_before_it_could_stall_replication(
    api: httpx.AsyncClient,
) -> None:
    deep: Any = "leaf"
    for _ in range(40):
        deep = {"d": deep}
    response = await api.post("/api/systems", json={"name": "Deep", "settings": deep})
    assert_problem(response, 422)
    assert "deeper than" in response.json()["reason"]
    very_deep = '{"name": "x", "settings": ' + "[" * 5000 + "]" * 5000 + "}"
    response = await api.post(
        "/api/systems", content=very_deep, headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("/api/systems/a%00b", "path"),
        ("/api/systems/a%ffb", "path"),
        ("/api/systems?after=%00", "query"),
        ("/api/systems?after=%c3", "query"),
    ],
)
async def test_nul_or_non_utf8_in_the_url_is_400(
    api: httpx.AsyncClient, url: str, part: str
) -> None:
    assert_problem(await api.get(url), 400, part)


async def test_a_nul_in_an_inline_driver_file_path_is_422(api: httpx.AsyncClient) -> None:
    driver = await create(
        api,
        "/api/drivers",
        {"name": "Echo", "file": "generic/echo.py", "class_name": "Echo", "role": "service"},
    )
    response = await api.post(
        f"/api/drivers/{driver['id']}/reload", json={"files": {"generic/a\u0000.py": "x = 1"}}
    )
    assert_problem(response, 422, "files")


def test_the_link_frame_must_fit_the_largest_document() -> None:
    with pytest.raises(ValueError, match="ENGINE_LINK_MAX_FRAME"):
        Settings(max_document_bytes=1024 * 1024, link_max_frame=1024 * 1024)
    Settings(max_document_bytes=512 * 1024, link_max_frame=1024 * 1024)
