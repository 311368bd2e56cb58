"""The link's operations as typed messages: a model for each op's arguments, a typed
shape for its result, and one table a side.

Each side serves its ops through :func:`op_table`: the arguments are validated against
the op's model (built once, at import) before the handler runs, so only a validation
failure is ``bad_args``; anything the handler raises past that is its own (a domain
error keeps its code, a bug is ``internal``). The wire shape is DESIGN §6's: ``args``
is the JSON object these models describe. Results are ``TypedDict``s: plain JSON
objects to encode, typed for both ends at no cost on the hot path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NotRequired, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
"""Answers one op: takes the request's ``args``, returns the JSON-able result."""


class BadArgs(Exception):
    """A request's arguments do not match its op's model."""


class Args(BaseModel):
    """Arguments of an op; unknown fields are ignored, so a newer peer can add some."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class NoArgs(Args):
    """``ping``, ``cache.expire``: nothing to say."""


class ModuleArgs(Args):
    """``module.start``, ``module.stop``, ``debug.subscribe``, ``debug.unsubscribe``."""

    module_id: str


class SystemArgs(Args):
    """``system.start``, ``system.stop``."""

    system_id: str


class ExecArgs(Args):
    """``exec``: run a method of a module the edge runs."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    module_id: str
    method: str
    args: list[Any] = Field(default_factory=list)
    #: ``kwargs`` on the wire (the name would clash with the model's own ``__init__``).
    keywords: dict[str, Any] = Field(default_factory=dict, alias="kwargs")
    timeout: float | None = None


class StatusArgs(Args):
    """``status``: the modules to describe (all loaded ones when absent)."""

    module_ids: list[str] | None = None


class RepositoryArgs(Args):
    """``repository``: ``pull``, ``reset`` (to ``commit``) or ``status``."""

    action: str
    commit: str | None = None
    reload: bool = False


class ReloadArgs(Args):
    """``reload``: load a driver's code afresh, with inline edits."""

    driver_id: str
    files: dict[str, str] | None = None


class ModelUpdatedArgs(Args):
    """``model.updated``: the new version of each changed document (None: deleted)."""

    versions: dict[str, str | None] = Field(default_factory=dict)


class ControlArgs(Args):
    """``control``: who runs the location's devices from ``epoch`` on."""

    controller: str
    epoch: int


class StateSyncArgs(Args):
    """``state.sync``: the status the edge's modules start with when it takes control."""

    status: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ReplicaChangesArgs(Args):
    """``replica.changes``: one batch of the master's feed after ``since``."""

    since: int = 0
    limit: int | None = None
    horizon: int = 0


class ReplicaFetchArgs(Args):
    """``replica.fetch``: the master's current copy of these documents."""

    ids: list[str] = Field(default_factory=list)


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

    status: dict[str, dict[str, Any]]
    controller: str


class ReplicaBatch(TypedDict):
    """``replica.changes``: a batch of the feed; ``skipped`` names what no frame carries."""

    changes: list[dict[str, Any]]
    last_seq: int
    more: bool
    horizon: int
    skipped: NotRequired[list[dict[str, Any]]]


class ReplicaDocuments(TypedDict):
    """``replica.fetch``: the master's current copies (never its secrets)."""

    documents: list[dict[str, Any]]


ArgsT = TypeVar("ArgsT", bound=Args)


@dataclass(frozen=True, slots=True)
class Op(Generic[ArgsT]):
    """One entry of a side's table: the op's name, its arguments' model, its handler."""

    name: str
    args: type[ArgsT]
    handle: Callable[[ArgsT], Awaitable[Any]]

    def handler(self) -> Handler:
        validate, handle, name = self.args.model_validate, self.handle, self.name

        async def handler(raw: dict[str, Any]) -> Any:
            try:
                args = validate(raw)
            except ValidationError as exc:
                raise BadArgs(f"bad arguments for {name!r}: {_reasons(exc)}") from None
            return await handle(args)

        return handler


def op_table(*ops: Op[Any]) -> Mapping[str, Handler]:
    """The handlers a ``LinkConnection`` serves, by op name."""
    return {op.name: op.handler() for op in ops}


def _reasons(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'args'}: {error['msg']}"
        for error in exc.errors()
    )
