"""Domain errors: raised by services, turned into problem+json by the routers.

Each error knows its HTTP status and title so that one exception handler maps them
all; services stay free of any web framework.
"""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """A failure a client should hear about, with an HTTP status and a clear detail."""

    status: int = 500
    title: str = "Internal Server Error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}


class NotFound(EngineError):
    status = 404
    title = "Not Found"


class UnknownSystem(NotFound):
    """No such control system (or none the runtime knows)."""


class UnknownModule(NotFound):
    """No such module, or no module of that name and index in the system."""


class InvalidField(EngineError):
    """A request field has a value we cannot accept; names the field and the reason."""

    status = 422
    title = "Unprocessable Content"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", field=field, reason=reason)
        self.field = field
        self.reason = reason


class Unauthorized(EngineError):
    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = "Bearer"


class Forbidden(EngineError):
    status = 403
    title = "Forbidden"


class Conflict(EngineError):
    status = 409
    title = "Conflict"


class ContentTooLarge(EngineError):
    """A body or the document it would produce exceeds the configured limit."""

    status = 413
    title = "Content Too Large"


class PreconditionFailed(EngineError):
    status = 412
    title = "Precondition Failed"


class DriverFailed(EngineError):
    """The driver raised: the message is the driver's, the module keeps running."""

    status = 500
    title = "Driver Error"


class BadGateway(EngineError):
    status = 502
    title = "Bad Gateway"


class Unavailable(EngineError):
    """The thing that would answer cannot be reached now."""

    status = 503
    title = "Service Unavailable"

    def __init__(self, detail: str, *, retry_after: float | None = None, **extensions: Any):
        super().__init__(detail, **extensions)
        if retry_after is not None:
            self.headers["Retry-After"] = str(max(1, round(retry_after)))


class GatewayTimeout(EngineError):
    status = 504
    title = "Gateway Timeout"


class ResyncRequired(Conflict):
    """The change feed no longer reaches back that far: the replica must start over."""


class ControlledElsewhere(EngineError):
    """Another server answers this: a 307 to the same path there."""

    status = 307
    title = "Temporary Redirect"

    def __init__(self, detail: str, *, location: str) -> None:
        super().__init__(detail, location=location)
        self.headers["Location"] = location
