"""Live reload of driver code, optionally with inline edits written first.

Code that does not load is refused with 422 carrying the import error (file, line,
exception); the modules keep running the code they had.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from app.routers.crud import problems
from app.routers.deps import AdminUser, NodeDep
from app.runtime.reports import DriverReloaded


class ReloadBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    files: dict[str, str] | None = Field(
        default=None,
        description="inline edits to write first: path inside the driver repository → content",
    )


class Reloaded(BaseModel):
    commit: str = Field(description="the driver repository's HEAD")
    modules: list[str] = Field(description="the modules now running the reloaded code")
    edges: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="on the master: each edge running the driver, with its reload result "
        "or {error}",
    )


router = APIRouter(prefix="/drivers", tags=["drivers"])


@router.post(
    "/{driver_id}/reload",
    operation_id="reloadDriver",
    summary="Load a driver's code afresh and restart its modules with it",
    response_model=Reloaded,
    responses=problems(401, 403, 404, 409, 422),
)
async def reload_driver(
    driver_id: str,
    node: NodeDep,
    _admin: AdminUser,
    body: Annotated[ReloadBody | None, Body()] = None,
) -> DriverReloaded:
    files = body.files if body is not None else None
    return await node.operations.reload_driver(driver_id, files)
