"""Running modules: start, stop, status variables and method calls (DESIGN §4).

Reads and calls reach a module wherever it runs (on the master, an edge's modules
through their proxies); start and stop act on the modules this server runs itself.
Driver errors keep their meaning: unknown method 404, bad arguments 422, the driver
raised 500 with its message, no answer in time 504.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from app.routers.conditional import cached_json
from app.routers.crud import NOT_MODIFIED, problems
from app.routers.deps import AdminUser, CurrentUser, NodeDep
from app.routers.routing import BY_MODULE
from app.runtime.reports import ModuleDescription
from app.services.resolve import RuntimeTargets

#: Status changes all the time: a cache may keep it only to revalidate (304).
LIVE_CACHE = "no-cache"


#: What a method call answers besides its result (README, API: modules and systems).
EXEC_PROBLEMS = problems(
    401,
    (404, "no such system, module or method"),
    (409, "the module is not running here"),
    (422, "a field is not acceptable, or the arguments do not fit the method"),
    (500, "the driver raised: detail carries its message; the module keeps running"),
    (504, "the method did not answer in time"),
)


async def runtime_targets(node: NodeDep) -> RuntimeTargets:
    return RuntimeTargets(node.catalog, node.modules)


TargetsDep = Annotated[RuntimeTargets, Depends(runtime_targets)]


class ActsWhereItRuns:
    """The declaration that a start or stop acts where its target runs: passed on over
    the link to the edge that runs it (an edge without a public URL), else on this
    server, which must run it (409 otherwise). Only an admin may ask (401, 403 first).
    """

    def __init__(self, kind: Literal["module", "system"], param: str) -> None:
        self.kind = kind
        self.param = param

    async def __call__(
        self, request: Request, node: NodeDep, targets: TargetsDep, _admin: AdminUser
    ) -> None:
        target_id = request.path_params[self.param]
        operations = node.operations
        if self.kind == "module":
            if not operations.forwards_module(target_id):
                await targets.ensure_local_module(target_id)
        elif not operations.forwards_system(target_id):
            await targets.ensure_local_system(target_id)


#: On start and stop routes: ``dependencies=[ACTS_ON_MODULE]``.
ACTS_ON_MODULE = Depends(ActsWhereItRuns("module", "module_id"))
ACTS_ON_SYSTEM = Depends(ActsWhereItRuns("system", "system_id"))


def live_json(request: Request, content: Any) -> Response:
    """Runtime values with an ``ETag``, revalidated on every use."""
    return cached_json(request, jsonable_encoder(content), cache_control=LIVE_CACHE)


class ExecBody(BaseModel):
    """A method call: positional and keyword arguments as the driver's method takes them."""

    model_config = ConfigDict(strict=True, extra="forbid")

    method: str = Field(min_length=1, description="the driver method to run")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ExecResult(BaseModel):
    result: Any = Field(description="what the method returned")


class ModuleRuntime(BaseModel):
    """A loaded module's lifecycle on this server."""

    id: str
    name: str
    driver_id: str
    role: Literal["device", "service", "logic"]
    running: bool
    error: str | None = Field(description="why the last lifecycle hook failed, if it did")


#: Every route here is about the module in its path: routed to its controller.
router = APIRouter(prefix="/modules", tags=["modules"], dependencies=[BY_MODULE])


@router.post(
    "/{module_id}/start",
    operation_id="startModule",
    summary="Start a module this server runs",
    response_model=ModuleRuntime,
    responses=problems(401, 403, 404, 409, 500),
    dependencies=[ACTS_ON_MODULE],
)
async def start_module(module_id: str, node: NodeDep, _admin: AdminUser) -> ModuleDescription:
    return await node.operations.start_module(module_id)


@router.post(
    "/{module_id}/stop",
    operation_id="stopModule",
    summary="Stop a module this server runs",
    response_model=ModuleRuntime,
    responses=problems(401, 403, 404, 409),
    dependencies=[ACTS_ON_MODULE],
)
async def stop_module(module_id: str, node: NodeDep, _admin: AdminUser) -> ModuleDescription:
    return await node.operations.stop_module(module_id)


@router.get(
    "/{module_id}/state",
    operation_id="getModuleState",
    summary="Read a module's status variables",
    response_model=dict[str, Any],
    responses={**NOT_MODIFIED, **problems(401, 404, 409)},
)
async def module_state(
    request: Request, module_id: str, targets: TargetsDep, _user: CurrentUser
) -> Response:
    handle = await targets.module(module_id)
    return live_json(request, handle.state())


@router.post(
    "/{module_id}/exec",
    operation_id="execModule",
    summary="Run one of a module's methods",
    response_model=ExecResult,
    responses=EXEC_PROBLEMS,
)
async def exec_module(
    module_id: str, body: ExecBody, targets: TargetsDep, _user: CurrentUser
) -> ExecResult:
    handle = await targets.module(module_id)
    return ExecResult(result=await handle.exec(body.method, body.args, body.kwargs))
