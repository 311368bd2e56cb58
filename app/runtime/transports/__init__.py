"""The transports drivers use to talk to their devices.

Stream devices: :class:`TcpClient` keeps the connection up, :class:`DelimiterFramer`
cuts the byte stream into frames and :class:`RequestQueue` pairs each command with
its reply. HTTP devices and services: :func:`http_client`.

Imports nothing of the engine outside ``app.runtime.transports``.
"""

from __future__ import annotations

from app.runtime.transports.backoff import Backoff
from app.runtime.transports.errors import (
    FrameTooLong,
    NotConnected,
    RequestTimeout,
    TransportError,
)
from app.runtime.transports.framing import DelimiterFramer
from app.runtime.transports.http import http_client
from app.runtime.transports.queue import RequestQueue
from app.runtime.transports.tcp import TcpClient

__all__ = [
    "Backoff",
    "DelimiterFramer",
    "FrameTooLong",
    "NotConnected",
    "RequestQueue",
    "RequestTimeout",
    "TcpClient",
    "TransportError",
    "http_client",
]
