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
WitnessResult = Literal["controls", "does_not_control", "unreachable", "refused", "tls"]
#: An edge's link to the master: up, or how it is down (README: the control document).
LinkState = Literal["up", "closed", "refused", "tls", "unreachable"]

Name = Field(min_length=1, max_length=200)


class Fields(BaseModel):
    """Client-writable fields: strict, so that misspelt keys are answered with 422."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Stored(BaseModel):
    """The identity every stored document carries, and when it was written."""

    id: str
    version: str
    created_at: datetime | None = Field(
        default=None, description="written by the system (absent on older documents)"
    )
    updated_at: datetime | None = Field(
        default=None, description="written by the system at every change"
    )


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
    until: datetime | None = Field(
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


# --- API answers -------------------------------------------------------------------
#
# What the API answers beyond the documents, one model per answer. They describe the
# answers for clients (the OpenAPI document); the routes send what the services build,
# so each model admits fields it does not name yet: a field added to an answer reaches
# clients at once, and belongs here too (tests/unit/test_models.py checks the
# services' answers against these models).


class Answer(BaseModel):
    """An API answer: typed for clients, open to fields added later."""

    model_config = ConfigDict(extra="allow")


class FieldProblem(Answer):
    field: str = Field(description="where: `timeout`, `modules[2]`, `body`")
    reason: str


class Problem(Answer):
    """RFC 9457 problem details, as every error (and a redirect) is answered."""

    type: str = Field(description="always about:blank: the status and title say it all")
    title: str
    status: int
    detail: str
    field: str | None = Field(default=None, description="the request field refused (400, 422)")
    reason: str | None = Field(default=None, description="why that field was refused")
    errors: list[FieldProblem] | None = Field(
        default=None, description="422: every field refused, the first one as `field`"
    )
    location: str | None = Field(default=None, description="307: where to ask instead")
    controller: str | None = Field(
        default=None, description="the server that controls the target (client routing)"
    )
    module_id: str | None = None
    system_id: str | None = None
    phase: str | None = Field(default=None, description="503 while booting: the boot phase")


class RestoreWindowSpan(Answer):
    """A restore window: the one open now, else the next."""

    start: datetime
    end: datetime


class WitnessReport(Answer):
    """What this server last learnt by asking the other side's witness."""

    checked_at: datetime
    result: WitnessResult
    detail: str | None = None
    last_alive_at: datetime | None = Field(
        default=None, description="the last sign of life the witness gave"
    )


class PendingDecision(Answer):
    """A decision carried out (or waiting) that the store has not recorded yet."""

    decision: str
    reason: str
    since: datetime


class DuplicateProcess(Answer):
    """Another process refused as an edge while the link of the edge is held."""

    instance: str | None = Field(description="the refused process's instance id")
    address: str
    at: datetime = Field(description="its first refusal")
    last_at: datetime
    refusals: int
    linked_instance: str | None = Field(description="the process that holds the link")
    linked_address: str
    linked_since: datetime


class ControlDocument(Answer):
    """Who controls an edge's devices now, why, and where clients reach both servers.

    ``GET /api/edges/{id}/control``, and the answer of a restore or a takeover.
    """

    edge_id: str
    controller: Controller
    epoch: int
    online: bool
    failover_active: bool
    failover_time: datetime | None = Field(
        default=None, description="when the master takes over if nothing changes"
    )
    since: datetime | None = Field(default=None, description="since when the controller holds")
    reason: str
    retry_after: float | None = Field(
        default=None, description="seconds until a pending failover acts"
    )
    next_restore_window: RestoreWindowSpan | None = Field(
        default=None, description="null: restore is manual"
    )
    edge_url: str | None = Field(default=None, description="the edge's api_url")
    master_url: str | None = None
    replication_error: str | None = Field(
        default=None,
        description="what was last left out of the edge's replica, or on an edge why its "
        "replica cannot catch up; null: whole",
    )
    replication_error_since: datetime | None = Field(
        default=None, description="on an edge: since when its catch-ups fail"
    )
    replication_retries: int | None = Field(
        default=None, description="on an edge: how many times the failing catch-up was retried"
    )
    link_error: str | None = Field(
        default=None, description="why the edge's link was last refused or failed"
    )
    link_error_at: datetime | None = None
    witness: WitnessReport | None = None
    pending: PendingDecision | None = None
    link_state: LinkState | None = Field(
        default=None, description="on an edge about its own location: its link now"
    )
    master_alive: bool | None = Field(
        default=None, description="on an edge: whether the latest word proves the master answers"
    )
    link_state_since: datetime | None = Field(
        default=None, description="on an edge: when `link_state` last changed"
    )
    duplicate: DuplicateProcess | None = Field(
        default=None, description="on the master: another process refused as this edge"
    )


class RepositoryResult(Answer):
    """The driver repository on the location's server after a repository request."""

    commit: str | None = Field(description="the repository's HEAD")
    reloaded: list[str] | None = Field(default=None, description="pull/reset with reload")
    branch: str | None = Field(default=None, description="status: null when detached")
    dirty: bool | None = Field(default=None, description="status: uncommitted changes")


class Health(Answer):
    status: Literal["ok"]
    node: str = Field(description="`master` or `edge:<id>`")


class StoreWrites(Answer):
    """Whether this server's store takes control decisions' writes."""

    writable: bool
    error: str | None = None
    since: datetime | None = None


class LinkHealth(Answer):
    """An edge's link to the master."""

    connected: bool
    error: str | None = Field(default=None, description="why it is refused or failing")
    error_at: datetime | None = None
    link_state: LinkState
    master_alive: bool = Field(description="whether the latest word proves the master answers")
    link_state_since: datetime
    instance_id: str = Field(description="this process's, new at each start")


class CertificateExpiry(Answer):
    """When a TLS certificate expires, as this server read it."""

    subject: str
    not_after: datetime
    expires_in_s: float
    expiring: bool = Field(description="within ENGINE_TLS_EXPIRY_WARNING_S")
    expired: bool


class TlsCertificates(Answer):
    """The certificates this server knows the expiry of."""

    warning_s: float = Field(description="ENGINE_TLS_EXPIRY_WARNING_S")
    certificate: CertificateExpiry | None = Field(
        default=None, description="this server's own (ENGINE_TLS_CERT)"
    )
    master_certificate: CertificateExpiry | None = Field(
        default=None, description="on an edge: the master's, as its link last verified it"
    )


class ReplicationFailure(Answer):
    """An edge's replica cannot catch up (its disk is full, read-only or failing)."""

    error: str
    since: datetime
    retries: int


class ReplicaSetAside(Answer):
    """The corrupt replica an edge moved aside at boot, to rebuild it from the master."""

    problems: list[str]
    moved_to: str
    at: datetime


class Ready(Answer):
    """``GET /api/ready`` once boot is complete: the boot summary and live counts.

    Which fields come depends on the role: the master's say how its edges and store
    fare, an edge's how its link and replica do.
    """

    status: Literal["ready"]
    node: str
    phase: str
    role: Literal["master", "edge"]
    boot_seconds: float
    modules_running: int
    # The master's.
    edges: int | None = None
    edges_connected: int | None = None
    edge_modules: int | None = None
    modules_failed: dict[str, str] | None = Field(
        default=None, description="modules that did not start at boot, with the reason"
    )
    store: StoreWrites | None = None
    decisions_unrecorded: int | None = None
    # An edge's.
    edge_id: str | None = None
    modules: int | None = Field(default=None, description="the modules of its location")
    replica_seq: int | None = None
    master_connected: bool | None = None
    link: LinkHealth | None = None
    controls: bool | None = Field(default=None, description="whether it runs its devices")
    replication_error: ReplicationFailure | None = Field(
        default=None, description="null while the replica catches up"
    )
    replica_set_aside: ReplicaSetAside | None = Field(
        default=None, description="the corrupt replica moved aside at this boot, if any"
    )
    tls: TlsCertificates | None = None


class Viewer(Answer):
    id: str
    name: str
    admin: bool


class StatusLocation(Answer):
    """One edge location on the status page."""

    id: str
    name: str
    description: str | None = None
    timezone: str
    failover: bool
    timeout: float | None = None
    window_start: str | None = None
    systems: list[str] = Field(description="the names of its systems")
    control: ControlDocument
    events: list[ControlEvent] = Field(description="its last decisions, newest first")
    can_operate: bool = Field(description="whether the viewer may restore or take over")


class MasterLink(Answer):
    """An edge's link to the master, in one word, with why and since when."""

    state: Literal["up", "closed", "refused", "tls", "unreachable"] = Field(
        description="up, or why not: unreachable (nothing answers), refused (the master "
        "answers and refuses this edge), tls (the master answers, TLS fails), closed (the "
        "link closed; whether the master lives is not known yet)"
    )
    master_alive: bool | None = Field(
        default=None, description="whether the latest failure proved the master answers"
    )
    since: datetime | None = Field(
        default=None, description="since when the link is in this state, when the link says"
    )
    error: str | None = Field(default=None, description="the link's last error while not up")
    error_at: datetime | None = None
    master_url: str | None = None


class StatusSnapshot(Answer):
    """Every location this server shows (``GET /api/status``, the status stream)."""

    node: str
    role: Literal["master", "edge"]
    server_time: datetime
    keepalive_s: float = Field(
        description="the stream is never silent for longer (ENGINE_STATUS_KEEPALIVE_S): a "
        "client that hears nothing for longer knows the server stopped answering"
    )
    health: dict[str, Any] = Field(
        description="this server's part of /api/ready: `store` and `decisions_unrecorded` "
        "on the master, `link` and `controls` on an edge"
    )
    master_link: MasterLink | None = Field(
        default=None, description="on an edge: its link to the master; null on the master"
    )
    user: Viewer
    operations_here: bool = Field(description="restore and takeover are served here")
    master_systems: list[str] = Field(description="the names of the master's own systems")
    locations: list[StatusLocation]


# --- PlaceOS answers (app/routers/placeos.py), as @placeos/ts-client reads them --------


class PlaceSettings(Answer):
    parent_id: str
    encryption_level: int
    settings_string: str = Field(description="the settings as JSON text")
    keys: list[str]


class PlaceModule(Answer):
    """A module in PlaceOS's ``PlaceModule`` shape."""

    id: str
    name: str
    custom_name: str = Field(description="what systems call it (Display)")
    driver_id: str
    control_system_id: str
    edge_id: str | None = Field(description="the edge location that runs it; null: the master")
    ip: str
    port: int | None = Field(description="null when none is set")
    uri: str
    running: bool
    version: int
    created_at: int = Field(description="Unix seconds; 0: unknown")
    updated_at: int = Field(description="Unix seconds; 0: unknown")
    role: int | None = Field(
        default=None, description="PlaceOS's PlaceDriverRole: 1 device, 2 service, 99 logic"
    )
    connected: bool | None = Field(
        default=None, description="its device's connection, when this server reaches it"
    )


class PlaceSystem(Answer):
    """A control system in PlaceOS's ``PlaceSystem`` shape."""

    id: str
    name: str
    display_name: str
    description: str
    modules: list[str]
    zones: list[str]
    features: list[str]
    images: list[str]
    email: str
    capacity: int
    bookable: bool
    public: bool
    installed_ui_devices: int
    support_url: str
    timezone: str
    version: int
    created_at: int = Field(description="Unix seconds; 0: unknown")
    updated_at: int = Field(description="Unix seconds; 0: unknown")
    edge_control_id: str | None
    settings: list[PlaceSettings | None] = Field(description="four levels of encryption")
    module_data: list[PlaceModule] | None = Field(
        default=None, description="with ?complete=true: its modules"
    )
