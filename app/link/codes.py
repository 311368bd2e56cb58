"""The link's codes, as explicit enums: the error codes of a response, the close codes.

An error's wire code is named here, never derived from a Python class name: renaming a
class cannot change the protocol. A domain error travels as the code of the nearest
class in :data:`DOMAIN_CODES` it derives from; what a code means to an HTTP client is
the routers' business (:mod:`app.routers.problems`), not the link's.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

from app.errors import (
    BadGateway,
    Conflict,
    ContentTooLarge,
    ControlledElsewhere,
    DriverFailed,
    EngineError,
    Forbidden,
    GatewayTimeout,
    InvalidField,
    NotFound,
    PreconditionFailed,
    ResyncRequired,
    Unauthorized,
    Unavailable,
    UnknownModule,
    UnknownSystem,
)


class ErrorCode(StrEnum):
    """The ``code`` of an error response or ``error`` event (DESIGN §6)."""

    # The link's own failures.
    BAD_JSON = "bad_json"
    BAD_FRAME = "bad_frame"
    UNEXPECTED_FRAME = "unexpected_frame"
    TOO_LARGE = "too_large"
    UNKNOWN_OP = "unknown_op"
    #: The op's arguments did not validate against its model.
    BAD_ARGS = "bad_args"
    #: The handler's result could not be encoded.
    BAD_RESULT = "bad_result"
    #: The handler failed unexpectedly (a bug): logged with its traceback by the peer.
    INTERNAL = "internal"
    # Domain errors the handler raised, as the engine's errors name them.
    NOT_FOUND = "NotFound"
    UNKNOWN_SYSTEM = "UnknownSystem"
    UNKNOWN_MODULE = "UnknownModule"
    INVALID_FIELD = "InvalidField"
    UNAUTHORIZED = "Unauthorized"
    FORBIDDEN = "Forbidden"
    CONFLICT = "Conflict"
    RESYNC_REQUIRED = "ResyncRequired"
    CONTENT_TOO_LARGE = "ContentTooLarge"
    PRECONDITION_FAILED = "PreconditionFailed"
    DRIVER_FAILED = "DriverFailed"
    BAD_GATEWAY = "BadGateway"
    UNAVAILABLE = "Unavailable"
    GATEWAY_TIMEOUT = "GatewayTimeout"
    CONTROLLED_ELSEWHERE = "ControlledElsewhere"
    #: The peer's own link to a third party was down or did not answer.
    LINK_CLOSED = "LinkClosed"
    LINK_TIMEOUT = "LinkTimeout"


#: The code each domain error travels as; a subclass not listed takes its base's code.
DOMAIN_CODES: dict[type[EngineError], ErrorCode] = {
    NotFound: ErrorCode.NOT_FOUND,
    UnknownSystem: ErrorCode.UNKNOWN_SYSTEM,
    UnknownModule: ErrorCode.UNKNOWN_MODULE,
    InvalidField: ErrorCode.INVALID_FIELD,
    Unauthorized: ErrorCode.UNAUTHORIZED,
    Forbidden: ErrorCode.FORBIDDEN,
    Conflict: ErrorCode.CONFLICT,
    ResyncRequired: ErrorCode.RESYNC_REQUIRED,
    ContentTooLarge: ErrorCode.CONTENT_TOO_LARGE,
    PreconditionFailed: ErrorCode.PRECONDITION_FAILED,
    DriverFailed: ErrorCode.DRIVER_FAILED,
    BadGateway: ErrorCode.BAD_GATEWAY,
    Unavailable: ErrorCode.UNAVAILABLE,
    GatewayTimeout: ErrorCode.GATEWAY_TIMEOUT,
    ControlledElsewhere: ErrorCode.CONTROLLED_ELSEWHERE,
}


def domain_code(error: EngineError) -> ErrorCode:
    """The wire code of a domain error: its class's, else its nearest listed base's."""
    for cls in type(error).__mro__:
        code = DOMAIN_CODES.get(cls)
        if code is not None:
            return code
    return ErrorCode.INTERNAL


class CloseCode(IntEnum):
    """Why a link's websocket was closed."""

    NORMAL = 1000
    GOING_AWAY = 1001
    #: A frame over the size limit (RFC 6455 "message too big").
    TOO_LARGE = 1009
    #: Replaced by a newer authenticated connection of the same edge process.
    REPLACED = 4000
    #: The edge stopped answering pings.
    UNRESPONSIVE = 4008
    #: A failed handshake, or the secret of a live link revoked; sent without detail.
    AUTH_FAILED = 4401
    #: The link endpoint asked of a server that is not the master.
    NOT_MASTER = 4404
    #: Another process of the same edge (another instance id) holds a live link: the
    #: master keeps the first and refuses this one; the reason says "duplicate".
    DUPLICATE = 4409
