"""The frames of the control link (DESIGN §6), one pydantic model per ``type``.

Frames are validated strictly: a peer that sends ``"ok": "yes"`` has a bug we want to
hear about, not one we quietly coerce. Unknown fields are ignored so a newer peer may add
fields without breaking an older one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    TypeAdapter,
    model_serializer,
    model_validator,
)

HexDigest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A nonce (32 random bytes) or an HMAC-SHA256 proof, as lowercase hex."""


class _Frame(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True)


class Challenge(_Frame):
    """Master → edge: the nonce the edge must prove it knows the secret against."""

    type: Literal["challenge"] = "challenge"
    nonce: HexDigest


class Hello(_Frame):
    """Edge → master: who the edge is, its proof, and what it brings to negotiation."""

    type: Literal["hello"] = "hello"
    edge_id: Annotated[str, StringConstraints(min_length=1)]
    boot_time: float
    nonce: HexDigest
    proof: HexDigest
    devices_loaded: bool
    replica_seq: Annotated[int, Field(ge=0)]
    commit: str | None = None
    #: Random per process start: two processes claiming one edge tell apart by it
    #: (absent from older edges, which are then never taken for duplicates).
    instance_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None

    @model_serializer(mode="wrap")
    def _wire_shape(self, serialize: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without an instance id, the hello has DESIGN §6's shape exactly."""
        data: dict[str, Any] = serialize(self)
        if self.instance_id is None:
            del data["instance_id"]
        return data


class Welcome(_Frame):
    """Master → edge: the master's own proof, so the edge knows it reached the real master."""

    type: Literal["welcome"] = "welcome"
    proof: HexDigest
    master_booting: bool
    epoch: Annotated[int, Field(ge=0)]


class Control(_Frame):
    """Master → edge: who controls the edge's devices from now on."""

    type: Literal["control"] = "control"
    controller: Literal["edge", "master", "none"]
    epoch: Annotated[int, Field(ge=0)]
    reason: str = ""


class Request(_Frame):
    type: Literal["request"] = "request"
    id: int
    op: str
    args: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(_Frame):
    code: str
    message: str


class Response(_Frame):
    """The answer to one request: ``result`` when ``ok``, else ``error``."""

    type: Literal["response"] = "response"
    id: int
    ok: bool
    result: Any = None
    error: ErrorBody | None = None

    @classmethod
    def success(cls, request_id: int, result: Any) -> Response:
        return cls(id=request_id, ok=True, result=result)

    @classmethod
    def failure(cls, request_id: int, code: str, message: str) -> Response:
        return cls(id=request_id, ok=False, error=ErrorBody(code=code, message=message))

    @model_validator(mode="after")
    def _error_matches_ok(self) -> Response:
        if self.ok == (self.error is not None):
            raise ValueError("a response carries an error exactly when ok is false")
        return self

    @model_serializer(mode="wrap")
    def _wire_shape(self, serialize: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Send ``result`` on success and ``error`` on failure, never both."""
        data: dict[str, Any] = serialize(self)
        del data["error" if self.ok else "result"]
        return data


class Event(_Frame):
    """A push without a reply; its payload fields sit beside ``event`` at the top level.

    Build one with ``Event(event="status", power=True)``; read the payload with ``fields``.
    """

    model_config = ConfigDict(extra="allow")

    type: Literal["event"] = "event"
    event: str

    @property
    def fields(self) -> dict[str, Any]:
        return self.model_extra or {}


Frame: TypeAlias = Annotated[
    Challenge | Hello | Welcome | Control | Request | Response | Event,
    Field(discriminator="type"),
]

FRAME_ADAPTER: TypeAdapter[Frame] = TypeAdapter(Frame)
