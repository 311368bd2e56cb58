"""The control link between the master and its edges (DESIGN §6).

The protocol is pure (frames, codec, pending-request table, authentication, handshake);
`connection` is the only module that does I/O.
"""

from __future__ import annotations

from app.link.auth import AuthFailed, FailureThrottle, NonceRegistry
from app.link.codec import DEFAULT_MAX_SIZE, FrameError, decode, encode
from app.link.connection import (
    FrameTransport,
    LinkConnection,
    StarletteTransport,
    TransportClosed,
    WebsocketsTransport,
    receive_frame,
)
from app.link.handshake import EdgeHandshake, MasterHandshake
from app.link.messages import (
    CLOSE_AUTH_FAILED,
    CLOSE_NOT_MASTER,
    CLOSE_TOO_LARGE,
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

__all__ = [
    "CLOSE_AUTH_FAILED",
    "CLOSE_NOT_MASTER",
    "CLOSE_TOO_LARGE",
    "DEFAULT_MAX_SIZE",
    "AuthFailed",
    "Challenge",
    "Control",
    "EdgeHandshake",
    "ErrorBody",
    "Event",
    "FailureThrottle",
    "Frame",
    "FrameError",
    "FrameTransport",
    "Hello",
    "LinkClosed",
    "LinkConnection",
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
    "decode",
    "encode",
    "receive_frame",
]
