"""Websocket URLs from a server's base URL, the one way every part of the engine builds them.

A server is known by its HTTP base URL (``ENGINE_MASTER_URL``, an edge's ``api_url``,
``ENGINE_PUBLIC_URL``); its websockets are at the same host with ``ws``/``wss``.
"""

from __future__ import annotations

#: The control link edges open to the master (DESIGN §6).
LINK_PATH = "/api/edge/link"
#: The client websocket (DESIGN §4).
CLIENT_PATH = "/api/ws"


def websocket_url(base_url: str, path: str) -> str:
    """``https://host[/]`` and ``/api/ws`` → ``wss://host/api/ws`` (``http`` → ``ws``).

    ``path`` may carry a query. A base URL of another scheme is kept as it is.
    """
    base = base_url.rstrip("/")
    scheme, separator, rest = base.partition("://")
    if separator and scheme in ("http", "https"):
        base = f"{'wss' if scheme == 'https' else 'ws'}://{rest}"
    return base + path
