"""Control systems at run time: their modules by name and index (``Display_1``).

State, funcs and exec reach every module of the system wherever it runs; start and
stop act on the system's modules when this server controls the system's location.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from app.routers.crud import NOT_MODIFIED, problems
from app.routers.deps import AdminUser, NodeDep, RoomUser
from app.routers.module_ops import (
    ACTS_ON_SYSTEM,
    EXEC_PROBLEMS,
    ExecBody,
    ExecResult,
    TargetsDep,
    live_json,
)
from app.routers.routing import BY_SYSTEM


class SystemExecBody(ExecBody):
    """A method call on module ``module_index`` of the system."""

    module: str = Field(min_length=1, description="the module's name in the system (Display)")
    index: int = Field(default=1, ge=1, description="1-based among modules of that name")


class SystemStarted(BaseModel):
    failed: dict[str, str] = Field(description="modules that did not start, with the reason")


#: Every route here is about the system in its path: routed to its controller.
router = APIRouter(prefix="/systems", tags=["systems"], dependencies=[BY_SYSTEM])


@router.post(
    "/{system_id}/start",
    operation_id="startSystem",
    summary="Start the system's modules",
    response_model=SystemStarted,
    responses=problems(401, 403, 404, 409),
    dependencies=[ACTS_ON_SYSTEM],
)
async def start_system(system_id: str, node: NodeDep, _admin: AdminUser) -> SystemStarted:
    return SystemStarted(failed=await node.operations.start_system(system_id))


@router.post(
    "/{system_id}/stop",
    operation_id="stopSystem",
    summary="Stop the system's modules",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404, 409),
    dependencies=[ACTS_ON_SYSTEM],
)
async def stop_system(system_id: str, node: NodeDep, _admin: AdminUser) -> Response:
    await node.operations.stop_system(system_id)
    return Response(status_code=204)


@router.get(
    "/{system_id}/state",
    operation_id="getSystemState",
    summary="Read every module's status variables, keyed Display_1",
    response_model=dict[str, dict[str, Any]],
    responses={**NOT_MODIFIED, **problems(401, 404)},
)
async def system_state(
    request: Request, system_id: str, targets: TargetsDep, _user: RoomUser
) -> Response:
    await targets.ensure_known_system(system_id)
    return live_json(request, targets.systems.state(system_id))


@router.get(
    "/{system_id}/funcs",
    operation_id="getSystemFuncs",
    summary="List the methods of one of the system's modules, with their parameters",
    response_model=dict[str, dict[str, Any]],
    responses={**NOT_MODIFIED, **problems(401, 404)},
)
async def system_funcs(
    request: Request,
    system_id: str,
    targets: TargetsDep,
    _user: RoomUser,
    module: Annotated[str, Query(min_length=1, description="the module's name (Display)")],
    index: Annotated[int, Query(ge=1, description="1-based among modules of that name")] = 1,
) -> Response:
    handle = await targets.system_module(system_id, module, index)
    return live_json(request, handle.funcs())


@router.post(
    "/{system_id}/exec",
    operation_id="execSystem",
    summary="Run a method of one of the system's modules (module, index)",
    response_model=ExecResult,
    responses=EXEC_PROBLEMS,
)
async def exec_system(
    system_id: str, body: SystemExecBody, targets: TargetsDep, _user: RoomUser
) -> ExecResult:
    handle = await targets.system_module(system_id, body.module, body.index)
    return ExecResult(result=await handle.exec(body.method, body.args, body.kwargs))
