"""The control link between the master and its edges (DESIGN §6).

The protocol is pure (frames, codec, pending-request table, authentication, handshake);
`connection` is the only module that does I/O.
"""

from __future__ import annotations

from app.link.auth import AuthFailed, FailureThrottle, NonceRegistry
from app.link.codec import DEFAULT_MAX_SIZE, FrameError, decode, encode
from app.link.codes import CloseCode, ErrorCode
from app.link.connection import (
    FrameTransport,
    LinkConnection,
    StarletteTransport,
    TransportClosed,
    WebsocketsTransport,
    receive_frame,
)
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
