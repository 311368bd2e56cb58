"""What the runtime reports of its modules, drivers and driver repository.

Each report is a JSON object as it is sent: the REST API returns it and the control
link carries it (``app.link.ops``) without converting it, so each is a ``TypedDict``
(typed for both ends, a plain ``dict`` at run time). They come from
``typing_extensions`` so pydantic can read them on Python 3.11.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypeAlias

from typing_extensions import TypedDict

from app.runtime.driver import Role

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
"""One JSON value: what a driver's method answers and a status variable holds."""


class ModuleDescription(TypedDict):
    """What the engine knows of a loaded module beyond its status."""

    id: str
    name: str
    driver_id: str
    role: Role
    running: bool
    #: Why the last lifecycle hook failed, if it did.
    error: str | None


class ModuleStatus(ModuleDescription):
    """A loaded module with its status variables and its commands."""

    state: dict[str, JsonValue]
    #: The commands: ``{name: {"params": [...], "doc": ...}}``.
    funcs: dict[str, dict[str, Any]]


class RepositoryStatus(TypedDict):
    """Where the driver repository stands."""

    commit: str
    #: None when HEAD is detached.
    branch: str | None
    dirty: bool


class RepositoryOutcome(TypedDict):
    """The answer to a repository request: ``commit`` always; the other fields say what
    the action did (``reloaded`` after pull or reset, ``branch`` and ``dirty`` for status)."""

    commit: str
    #: The drivers reloaded after a pull or reset asked for it (empty when not asked).
    reloaded: NotRequired[list[str]]
    branch: NotRequired[str | None]
    dirty: NotRequired[bool]


class ReloadFailed(TypedDict):
    """Another server's reload of a driver, which did not happen: why."""

    error: str


class DriverReloaded(TypedDict):
    """A driver's code loaded afresh: the repository's HEAD and the modules restarted."""

    commit: str
    modules: list[str]
    #: On the master: each edge running the driver, with what its own reload answered.
    edges: NotRequired[dict[str, DriverReloaded | ReloadFailed]]
