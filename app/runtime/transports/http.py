"""The HTTP client drivers of web services and HTTP-controlled devices use."""

from __future__ import annotations

import ssl

import httpx

USER_AGENT = "engine-driver"

#: A device that does not accept a connection within this is down, however long
#: its slowest request may legitimately take.
_CONNECT_TIMEOUT_S = 5.0

#: Devices serve few clients; a driver never needs more than a handful of sockets.
_LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=4, keepalive_expiry=30.0)


def http_client(
    base_url: str, *, timeout: float = 10.0, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for one device or service, with bounded waits and sockets.

    ``verify`` is an SSL context trusting the device's CA, ``True`` for the system
    CAs, or ``False`` for the self-signed certificates many devices ship with.
    """
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, _CONNECT_TIMEOUT_S)),
        limits=_LIMITS,
        verify=verify,
        headers={"User-Agent": USER_AGENT},
    )
