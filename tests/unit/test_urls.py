"""Websocket URLs from base URLs."""

from __future__ import annotations

import pytest

from app.urls import CLIENT_PATH, LINK_PATH, websocket_url


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("https://master.example", LINK_PATH, "wss://master.example/api/edge/link"),
        ("http://127.0.0.1:8000/", CLIENT_PATH, "ws://127.0.0.1:8000/api/ws"),
        ("http://edge:8001", "/api/ws?token=t", "ws://edge:8001/api/ws?token=t"),
        ("ws://already", LINK_PATH, "ws://already/api/edge/link"),
        ("https://http.example", CLIENT_PATH, "wss://http.example/api/ws"),
    ],
)
def test_http_base_urls_become_websocket_urls(base: str, path: str, expected: str) -> None:
    assert websocket_url(base, path) == expected
