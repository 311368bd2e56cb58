"""The control link between the master and its edges (DESIGN §6).

The protocol is pure: frames (``messages``), their text (``codec``), the ops each side
serves, declared once (``ops``), the pending-request table, authentication and the
handshake. ``connection`` is where it meets asyncio, over the websocket adapters of
``transports``; ``answers`` and ``eager`` are its two helpers.

Imports only ``app.errors`` of the engine, and ``app.runtime.reports`` for the shapes of
the results the ops carry.
"""

from __future__ import annotations

from app.link.auth import AuthFailed, FailureThrottle, NonceRegistry
from app.link.codec import DEFAULT_MAX_SIZE, FrameError, decode, encode
from app.link.codes import CloseCode, ErrorCode
from app.link.connection import LinkConnection
from app.link.failures import (
    LINK_STATES,
    HandshakeClosed,
    LinkFailure,
    LinkReport,
    classify,
)
from app.link.handshake import EdgeHandshake, MasterHandshake
from app.link.messages import (
    Challenge,
    Control,
    ErrorBody,
    Event,
    Frame,
    Hello,
    Request,
    Response,
    Welcome,
)
from app.link.pending import LinkClosed, LinkRequestError, LinkTimeout, PendingRequests
from app.link.transports import (
    FrameTransport,
    StarletteTransport,
    TransportClosed,
    WebsocketsTransport,
    receive_frame,
)

#: Aliases of :class:`CloseCode` members, for callers not yet moved to the enum.
CLOSE_AUTH_FAILED = CloseCode.AUTH_FAILED
CLOSE_TOO_LARGE = CloseCode.TOO_LARGE

__all__ = [
    "CLOSE_AUTH_FAILED",
    "CLOSE_TOO_LARGE",
    "DEFAULT_MAX_SIZE",
    "LINK_STATES",
    "AuthFailed",
    "Challenge",
    "CloseCode",
    "Control",
    "EdgeHandshake",
    "ErrorBody",
    "ErrorCode",
    "Event",
    "FailureThrottle",
    "Frame",
    "FrameError",
    "FrameTransport",
    "HandshakeClosed",
    "Hello",
    "LinkClosed",
    "LinkConnection",
    "LinkFailure",
    "LinkReport",
    "LinkRequestError",
    "LinkTimeout",
    "MasterHandshake",
    "NonceRegistry",
    "PendingRequests",
    "Request",
    "Response",
    "StarletteTransport",
    "TransportClosed",
    "WebsocketsTransport",
    "Welcome",
    "classify",
    "decode",
    "encode",
    "receive_frame",
]
