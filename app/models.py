"""Document models (DESIGN §3): what clients write, and what the API returns.

Each configuration resource has a *fields* model (what a client may write, validated
strictly: unknown fields are refused so a typo never passes silently) and a document
model that adds ``id``, ``type``, ``version`` and the fields the system maintains.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.control.windows import validate_cron, validate_timezone

Role = Literal["device", "service", "logic"]
Controller = Literal["edge", "master", "none"]

Name = Field(min_length=1, max_length=200)


class Fields(BaseModel):
    """Client-writable fields: strict, so that misspelt keys are answered with 422."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Stored(BaseModel):
    """The identity every stored document carries."""

    id: str
    version: str


# --- EdgeControl -------------------------------------------------------------------

#: Seconds the master waits for a lost edge before it takes over, unless the edge says.
DEFAULT_FAILOVER_TIMEOUT_S = 20.0


class EdgeFields(Fields):
    name: str = Name
    description: str = ""
    failover: bool = True
    timeout: float = Field(
        default=DEFAULT_FAILOVER_TIMEOUT_S, gt=0, description="seconds before the master acts"
    )
    window_start: str | None = Field(default=None, description="5-field CRON, or null: manual")
    window_length: float | None = Field(
        default=None, gt=0, validate_default=True, description="seconds"
    )
    timezone: str = "UTC"
    admins: list[str] = []
    api_url: str | None = Field(default=None, description="base URL clients use for this edge")

    @field_validator("window_start")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = validate_cron(value)
        if problem:
            raise ValueError(f"not a valid 5-field CRON expression: {problem}")
        return value

    @field_validator("window_length", mode="after")
    @classmethod
    def _length_with_window(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None and info.data.get("window_start"):
            raise ValueError("required when window_start is set")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        problem = validate_timezone(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")


class EdgeControl(EdgeFields, Stored):
    type: Literal["edge"] = "edge"
    commit: str | None = Field(default=None, description="written by the system")


class EdgeCreated(EdgeControl):
    secret: str = Field(description="the shared secret: shown once, store it now")


class ValidSecret(BaseModel):
    """One secret that authenticates the edge now, named by fingerprint, never shown."""

    fingerprint: str = Field(
        description="the first 12 hex digits of the secret's SHA-256: "
        '`printf %s "$ENGINE_EDGE_SECRET" | sha256sum | cut -c1-12`'
    )
    current: bool = Field(description="the newest secret, valid until the next rotation")
    until: str | None = Field(
        description="when it stops being valid at the latest (it ends sooner once the edge "
        "authenticates with a newer one); null for the current secret"
    )
    in_use: bool = Field(description="the secret the edge's live link authenticated with")


class EdgeSecret(BaseModel):
    id: str
    secret: str
    valid: list[ValidSecret] = Field(
        default=[], description="every secret that authenticates the edge now, newest first"
    )


# --- ControlSystem -----------------------------------------------------------------


class SystemFields(Fields):
    name: str = Name
    description: str = ""
    edge_control_id: str | None = Field(default=None, description="unset: master controls")
    modules: list[str] = Field(default=[], description="ordered module ids")
    settings: dict[str, Any] = {}

    @field_validator("modules")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a module may appear only once in a system")
        return value


class ControlSystem(SystemFields, Stored):
    type: Literal["system"] = "system"


# --- Module ------------------------------------------------------------------------


class ModuleFields(Fields):
    driver_id: str
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z][A-Za-z0-9]*$")
    ip: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    uri: str | None = None
    settings: dict[str, Any] = {}
    running: bool = True


class ModuleCreate(ModuleFields):
    system_id: str | None = Field(
        default=None, description="convenience: append the new module to this system"
    )


class Module(ModuleFields, Stored):
    type: Literal["module"] = "module"


# --- Driver ------------------------------------------------------------------------


class DriverFields(Fields):
    name: str = Name
    description: str = ""
    file: str = Field(min_length=1, description="path inside the driver repository")
    class_name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    role: Role = "device"
    settings: dict[str, Any] = Field(default={}, description="defaults for its modules")

    @field_validator("file")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be a relative path inside the driver repository")
        return value


class Driver(DriverFields, Stored):
    type: Literal["driver"] = "driver"


# --- User and tokens ---------------------------------------------------------------


class UserFields(Fields):
    name: str = Name
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    admin: bool = False


class User(UserFields, Stored):
    type: Literal["user"] = "user"


class TokenRequest(Fields):
    name: str = Field(default="api", min_length=1, max_length=100)


class IssuedToken(BaseModel):
    id: str
    token: str = Field(description="shown once: only its hash is kept")


class TokenInfo(BaseModel):
    id: str
    name: str
    user_id: str
    created_at: datetime


# --- Control state and history -----------------------------------------------------


class ControlState(BaseModel):
    """Who controls an edge's devices now; written by the master only."""

    edge_id: str
    controller: Controller = "edge"
    epoch: int = 0
    online: bool = False
    failover_active: bool = False
    failover_time: datetime | None = None
    since: datetime | None = None
    reason: str = ""


class ControlEvent(BaseModel):
    """One entry of the append-only history of control decisions."""

    id: str
    edge_id: str
    at: datetime
    kind: str
    controller: Controller
    epoch: int
    reason: str
    by: str | None = None


# --- Collections -------------------------------------------------------------------


ItemT = TypeVar("ItemT", bound=BaseModel)


class PageOut(BaseModel, Generic[ItemT]):
    """A page of a collection, ordered by id; pass ``next`` as ``after`` to continue."""

    items: list[ItemT]
    total: int
    next: str | None = None
