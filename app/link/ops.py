"""The link's operations, each declared once: its name, its arguments, its result.

An :class:`Op` is a pure declaration, typed by its arguments and its result, which both
ends of the link use:

- the caller sends a request through it and gets the result's type back:
  ``await EXEC.call(link, {"module_id": ..., ...})``; the connection does the I/O;
- a side serves it through it: ``EXEC.serve(handler)``, and mypy refuses a handler
  whose argument or result does not fit the op. :func:`op_table` builds a side's table
  from those and refuses one that misses an op of its direction or serves one twice.

Arguments are ``TypedDict``s: the caller writes a plain ``dict`` (no model is built
to send a request), and the receiving side validates it against the same declaration
before the handler runs (a ``TypeAdapter`` compiled once, at import), so only a
validation failure is ``bad_args``; anything the handler raises past that is its own
(a domain error keeps its code, a bug is ``internal``). A key with a default may be
left out by a peer: validation fills it in, so a handler reads every key. Unknown keys
are dropped, so a newer peer can add some.

Results are ``TypedDict``s too, plain JSON objects to encode and to read, typed for both
ends at no cost: nothing validates them. Where a result has no fixed shape, its type says
what is known. The wire shape is DESIGN §6's: ``args`` and ``result`` are the JSON
objects these types describe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Annotated, Any, Generic, NamedTuple, NotRequired, Protocol, TypeAlias, TypeVar

from pydantic import Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from app.link.codec import Encoded
from app.runtime.reports import (
    DriverReloaded,
    JsonValue,
    ModuleDescription,
    ModuleStatus,
    RepositoryOutcome,
)

Handler = Callable[[dict[str, Any]], Awaitable[object]]
"""Answers one op on the wire: takes the request's raw ``args``, returns the result."""

ArgsT = TypeVar("ArgsT", bound=Mapping[str, object])
ResultT = TypeVar("ResultT")

AnyOp: TypeAlias = "Op[Any, Any]"
"""An op of whatever arguments and result."""


class BadArgs(Exception):
    """A request's arguments do not match its op's declaration."""


class Requester(Protocol):
    """What sends a request: a :class:`~app.link.LinkConnection`."""

    def request(
        self, op: str, args: Mapping[str, object] | None = None, *, timeout: float | None = None
    ) -> Coroutine[Any, Any, Any]: ...


class Served(NamedTuple):
    """One op of a side's table, with the handler that validates and answers it."""

    op: AnyOp
    handler: Handler


class Op(Generic[ArgsT, ResultT]):
    """One op: its name on the wire, its arguments' type and (as a type parameter) its
    result's type. Declared once below, used by both ends."""

    __slots__ = ("_validate", "args", "name")

    def __init__(self, name: str, args: type[ArgsT]) -> None:
        self.name = name
        self.args = args
        self._validate = TypeAdapter(args).validate_python

    def __repr__(self) -> str:
        return f"Op({self.name!r})"

    def call(
        self, link: Requester, args: ArgsT, *, timeout: float | None = None
    ) -> Coroutine[Any, Any, ResultT]:
        """Send this op's request over ``link``; await it for the peer's result.

        Raises what ``LinkConnection.request`` raises: `LinkRequestError` (the peer
        answered with an error), `LinkTimeout`, `ContentTooLarge` (nothing was sent) or
        `LinkClosed`. The result is the peer's JSON as it came: it is not validated.
        """
        return link.request(self.name, args, timeout=timeout)

    def parse(self, raw: Mapping[str, object]) -> ArgsT:
        """The arguments as a handler gets them: validated, every default filled in.

        Raises `BadArgs`.
        """
        try:
            return self._validate(raw)
        except ValidationError as exc:
            raise BadArgs(f"bad arguments for {self.name!r}: {_reasons(exc)}") from None

    def serve(self, handle: Callable[[ArgsT], Awaitable[ResultT | Encoded]]) -> Served:
        """This op's entry in a side's table: ``handle`` gets the arguments `parse` read.

        A handler may answer with JSON text already encoded (`codec.preencoded`), which
        must be of the result's shape: nothing checks it.
        """
        parse = self.parse

        async def handler(raw: dict[str, Any]) -> object:
            return await handle(parse(raw))

        return Served(self, handler)


def op_table(direction: Sequence[AnyOp], *served: Served) -> Mapping[str, Handler]:
    """The handlers a side's ``LinkConnection`` serves, by op name.

    Raises ``ValueError`` unless ``served`` answers every op of ``direction`` once and
    nothing else: a side that forgot an op would answer ``unknown_op`` at run time.
    """
    table = {entry.op.name: entry.handler for entry in served}
    expected = {op.name for op in direction}
    if len(table) != len(served) or table.keys() != expected:
        names = [entry.op.name for entry in served]
        twice = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(
            f"an op table must serve each of {sorted(expected)} once: missing "
            f"{sorted(expected - table.keys())}, extra {sorted(table.keys() - expected)}, "
            f"twice {twice}"
        )
    return table


def _reasons(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'args'}: {error['msg']}"
        for error in exc.errors()
    )


# --- arguments ---------------------------------------------------------------------------


class NoArgs(TypedDict):
    """``ping``, ``cache.expire``: nothing to say."""


class ModuleArgs(TypedDict):
    """``module.start``, ``module.stop``, ``debug.subscribe``, ``debug.unsubscribe``."""

    module_id: str


class SystemArgs(TypedDict):
    """``system.start``, ``system.stop``."""

    system_id: str


class ExecArgs(TypedDict):
    """``exec``: run a method of a module the edge runs, within ``timeout`` seconds."""

    module_id: str
    method: str
    args: Annotated[list[Any], Field(default_factory=list)]
    kwargs: Annotated[dict[str, Any], Field(default_factory=dict)]
    timeout: Annotated[float | None, Field(default=None)]


class StatusArgs(TypedDict):
    """``status``: the modules to describe (absent or None: every loaded one)."""

    module_ids: NotRequired[list[str] | None]


class RepositoryArgs(TypedDict):
    """``repository``: ``pull``, ``reset`` (to ``commit``) or ``status``."""

    action: str
    commit: Annotated[str | None, Field(default=None)]
    reload: Annotated[bool, Field(default=False)]


class ReloadArgs(TypedDict):
    """``reload``: load a driver's code afresh, with inline edits."""

    driver_id: str
    files: Annotated[dict[str, str] | None, Field(default=None)]


class ModelUpdatedArgs(TypedDict):
    """``model.updated``: the new version of each changed document (None: deleted)."""

    versions: Annotated[dict[str, str | None], Field(default_factory=dict)]


class ControlArgs(TypedDict):
    """``control``: who runs the location's devices from ``epoch`` on."""

    controller: str
    epoch: int


class StateSyncArgs(TypedDict):
    """``state.sync``: the status the edge's modules start with when it takes control."""

    status: Annotated[dict[str, dict[str, Any]], Field(default_factory=dict)]


class ReplicaChangesArgs(TypedDict):
    """``replica.changes``: one batch of the master's feed after ``since``."""

    since: Annotated[int, Field(default=0)]
    limit: Annotated[int | None, Field(default=None)]
    horizon: Annotated[int, Field(default=0)]


class ReplicaFetchArgs(TypedDict):
    """``replica.fetch``: the master's current copy of these documents."""

    ids: Annotated[list[str], Field(default_factory=list)]


# --- results -----------------------------------------------------------------------------


class Empty(TypedDict):
    """The result of an op that has nothing to say (``ping``, ``system.stop``…)."""


class SystemStarted(TypedDict):
    """``system.start``: the modules that did not start, with the reason."""

    failed: dict[str, str]


class ModelUpdated(TypedDict):
    """``model.updated``: the replica's sequence once the versions are in."""

    replica_seq: int


class ControlObeyed(TypedDict):
    """``control``: the last status of the modules it stopped, and who controls now."""

    status: dict[str, dict[str, JsonValue]]
    controller: str


class ReplicaBatch(TypedDict):
    """``replica.changes``: a batch of the feed; ``skipped`` names what no frame carries.

    Each change is a ``Change`` as JSON (``app.store.base``); ``horizon`` is the feed's
    oldest sequence still complete."""

    changes: list[dict[str, Any]]
    last_seq: int
    more: bool
    horizon: int
    skipped: NotRequired[list[dict[str, Any]]]


class ReplicaDocuments(TypedDict):
    """``replica.fetch``: the master's current copies (never its secrets)."""

    documents: list[dict[str, Any]]


# --- the table ---------------------------------------------------------------------------

# Master → edge.
PING: Op[NoArgs, Empty] = Op("ping", NoArgs)
EXEC: Op[ExecArgs, JsonValue] = Op("exec", ExecArgs)
STATUS: Op[StatusArgs, dict[str, ModuleStatus]] = Op("status", StatusArgs)
MODULE_START: Op[ModuleArgs, ModuleDescription] = Op("module.start", ModuleArgs)
MODULE_STOP: Op[ModuleArgs, ModuleDescription] = Op("module.stop", ModuleArgs)
SYSTEM_START: Op[SystemArgs, SystemStarted] = Op("system.start", SystemArgs)
SYSTEM_STOP: Op[SystemArgs, Empty] = Op("system.stop", SystemArgs)
REPOSITORY: Op[RepositoryArgs, RepositoryOutcome] = Op("repository", RepositoryArgs)
RELOAD: Op[ReloadArgs, DriverReloaded] = Op("reload", ReloadArgs)
MODEL_UPDATED: Op[ModelUpdatedArgs, ModelUpdated] = Op("model.updated", ModelUpdatedArgs)
CACHE_EXPIRE: Op[NoArgs, Empty] = Op("cache.expire", NoArgs)
DEBUG_SUBSCRIBE: Op[ModuleArgs, Empty] = Op("debug.subscribe", ModuleArgs)
DEBUG_UNSUBSCRIBE: Op[ModuleArgs, Empty] = Op("debug.unsubscribe", ModuleArgs)
CONTROL: Op[ControlArgs, ControlObeyed] = Op("control", ControlArgs)
STATE_SYNC: Op[StateSyncArgs, Empty] = Op("state.sync", StateSyncArgs)

# Edge → master.
REPLICA_CHANGES: Op[ReplicaChangesArgs, ReplicaBatch] = Op("replica.changes", ReplicaChangesArgs)
REPLICA_FETCH: Op[ReplicaFetchArgs, ReplicaDocuments] = Op("replica.fetch", ReplicaFetchArgs)

#: What an edge serves, and what the master serves.
MASTER_TO_EDGE: tuple[AnyOp, ...] = (
    PING,
    EXEC,
    STATUS,
    MODULE_START,
    MODULE_STOP,
    SYSTEM_START,
    SYSTEM_STOP,
    REPOSITORY,
    RELOAD,
    MODEL_UPDATED,
    CACHE_EXPIRE,
    DEBUG_SUBSCRIBE,
    DEBUG_UNSUBSCRIBE,
    CONTROL,
    STATE_SYNC,
)
EDGE_TO_MASTER: tuple[AnyOp, ...] = (REPLICA_CHANGES, REPLICA_FETCH)
