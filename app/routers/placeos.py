"""The PlaceOS API a front end calls, as the ``@placeos/ts-client`` library sends it.

``GET /auth/authority`` is the first thing the library fetches: it says which API
the server speaks (a ``version`` of 2.x selects the PlaceOS paths). The systems
routes under ``/api/engine/v2/systems`` are those of the library's ``querySystems``,
``showSystem``, ``executeOnSystem``, ``systemModuleState``,
``lookupSystemModuleState``, ``functionList``, ``moduleTypes`` and ``moduleCount``,
answered from the same runtime as the native routes. Each route about a system's
modules declares its routing like the native ones; it prefers proxying, because
PlaceOS never redirects and a browser drops ``Authorization`` when it follows a
redirect to another origin.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.errors import NotFound
from app.models import PlaceSystem
from app.openapi import header_refs
from app.routers.conditional import cached_json
from app.routers.crud import NOT_MODIFIED, next_link, problems
from app.routers.deps import CatalogDep, CurrentUser, NodeDep, RoomUser
from app.routers.module_ops import EXEC_PROBLEMS, TargetsDep, live_json
from app.routers.routing import RoutedBy
from app.runtime.handle import ModuleHandle
from app.services.catalog import DRIVER, MODULE, SYSTEM, Catalog
from app.services.resolve import RuntimeTargets
from app.store.base import Document

#: The PlaceOS API version this engine speaks (the library wants 2.x for its v2 paths).
PLACEOS_API_VERSION = "2.0.0"

authority_router = APIRouter(tags=["placeos"])
router = APIRouter(prefix="/api/engine/v2/systems", tags=["placeos"])

#: Routes about a system's modules: routed to the controller, by proxy unless asked.
BY_SYSTEM_PROXIED = Depends(RoutedBy("system", "system_id", prefer="proxy"))


class Authority(BaseModel):
    """PlaceOS's authority document: who this server is and how users sign in."""

    id: str
    name: str
    description: str
    domain: str
    login_url: str = Field(description="where a front end without a token sends the user")
    logout_url: str
    session: bool = Field(description="always false: tokens are issued through the API")
    production: bool
    config: dict[str, Any]
    version: str = Field(description="the PlaceOS API version spoken (2.x: /api/engine/v2)")


@authority_router.get(
    "/auth/authority",
    operation_id="getAuthority",
    summary="Get the PlaceOS authority document front-end libraries fetch first (public)",
    response_model=Authority,
)
async def authority(request: Request, node: NodeDep) -> Authority:
    host = request.headers.get("host", "")
    return Authority(
        id=f"authority-{node.settings.node_name}",
        name=host,
        description="Engine HA (PlaceOS / ACA Engine compatible API)",
        domain=host.partition(":")[0],
        login_url="/?continue={{url}}",
        logout_url="/",
        session=False,
        production=True,
        config={},
        version=PLACEOS_API_VERSION,
    )


#: PlaceOS's ``PlaceDriverRole`` numbers, for the roles that mean the same here.
PLACEOS_ROLES = {"device": 1, "service": 2, "logic": 99}


def placeos_system(doc: Document) -> dict[str, Any]:
    """A ControlSystem in PlaceOS's ``PlaceSystem`` shape (our fields kept alongside)."""
    body = doc.body
    system: dict[str, Any] = {
        "id": doc.id,
        "name": body.get("name", ""),
        "display_name": body.get("name", ""),
        "description": body.get("description", ""),
        "modules": list(body.get("modules", [])),
        "zones": [],
        "features": [],
        "images": [],
        "email": "",
        "capacity": 0,
        "bookable": False,
        "public": False,
        "installed_ui_devices": 0,
        "support_url": "",
        "timezone": "",
        "version": int(doc.version) if doc.version.isdigit() else 0,
        **epoch_times(body),
        "edge_control_id": body.get("edge_control_id"),
        "settings": [
            {
                "parent_id": doc.id,
                "encryption_level": 0,
                "settings_string": _settings_string(body.get("settings", {})),
                "keys": sorted(body.get("settings", {})),
            },
            None,
            None,
            None,
        ],
    }
    return system


def placeos_module(
    doc: Document, system: Document, role: str | None, state: dict[str, Any] | None
) -> dict[str, Any]:
    """A Module of ``system`` in PlaceOS's ``PlaceModule`` shape: ``custom_name`` is what
    systems call it, ``role`` its driver's, ``connected`` what its status says when this
    server reaches it (absent otherwise, as PlaceOS leaves it when unknown)."""
    body = doc.body
    module = {
        "id": doc.id,
        "name": body.get("name", ""),
        "custom_name": body.get("name", ""),
        "driver_id": body.get("driver_id", ""),
        "control_system_id": system.id,
        "edge_id": system.body.get("edge_control_id"),
        "ip": body.get("ip") or "",
        "port": body.get("port"),
        "uri": body.get("uri") or "",
        "running": bool(body.get("running", True)),
        "version": int(doc.version) if doc.version.isdigit() else 0,
        **epoch_times(body),
    }
    if role in PLACEOS_ROLES:
        module["role"] = PLACEOS_ROLES[role]
    if state is not None and isinstance(state.get("connected"), bool):
        module["connected"] = state["connected"]
    return module


def epoch_times(body: dict[str, Any]) -> dict[str, int]:
    """``created_at`` and ``updated_at`` as PlaceOS sends them: Unix seconds (0: unknown)."""
    return {name: _unix_seconds(body.get(name)) for name in ("created_at", "updated_at")}


def _unix_seconds(instant: object) -> int:
    try:
        return int(datetime.fromisoformat(str(instant)).timestamp()) if instant else 0
    except ValueError:  # not written by the catalog
        return 0


def _settings_string(settings: dict[str, Any]) -> str:
    return json.dumps(settings) if settings else ""


@router.get(
    "",
    operation_id="placeosQuerySystems",
    summary="List systems in PlaceOS's shape (querySystems); X-Total-Count and Link for paging",
    response_model=list[PlaceSystem],
    responses={
        200: header_refs("Link", "X-Total-Count"),
        **NOT_MODIFIED,
        **problems(401, 422),
    },
)
async def query_systems(
    request: Request,
    catalog: CatalogDep,
    _user: CurrentUser,
    q: Annotated[str | None, Query(description="words in the name or description")] = None,
    module_id: Annotated[str | None, Query(description="systems holding this module")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    where = {"modules": module_id} if module_id else None
    systems = (await catalog.find(SYSTEM, where=where)).items
    if q:
        words = q.lower()
        systems = [
            s
            for s in systems
            if words in str(s.body.get("name", "")).lower()
            or words in str(s.body.get("description", "")).lower()
        ]
    page = systems[offset : offset + limit]
    headers = {"X-Total-Count": str(len(systems))}
    if offset + limit < len(systems):
        headers["Link"] = next_link(request, offset=str(offset + limit), limit=str(limit))
    return cached_json(request, [placeos_system(s) for s in page], headers=headers)


@router.get(
    "/{system_id}",
    operation_id="placeosShowSystem",
    summary="Get a system in PlaceOS's shape (showSystem)",
    response_model=PlaceSystem,
    responses={**NOT_MODIFIED, **problems(401, 404)},
)
async def show_system(
    request: Request,
    system_id: str,
    catalog: CatalogDep,
    targets: TargetsDep,
    _user: RoomUser,
    complete: Annotated[bool, Query(description="with module_data: the system's modules")] = False,
) -> Response:
    doc = await catalog.get(SYSTEM, system_id)
    system = placeos_system(doc)
    if complete:
        system["module_data"] = await module_data(catalog, targets, doc)
    return cached_json(request, system)


async def module_data(catalog: Catalog, targets: RuntimeTargets, system: Document) -> list[Any]:
    """The system's modules in PlaceOS's shape, each with its driver's role."""
    roles: dict[str, str | None] = {}
    data = []
    for module_id in system.body.get("modules", []):
        module = await catalog.get(MODULE, module_id)
        driver_id = str(module.body.get("driver_id"))
        if driver_id not in roles:
            try:
                roles[driver_id] = (await catalog.get(DRIVER, driver_id)).body.get("role")
            except NotFound:
                roles[driver_id] = None
        handle = targets.reachable(module_id)
        state = handle.state() if handle is not None else None
        data.append(placeos_module(module, system, roles[driver_id], state))
    return data


@router.get(
    "/{system_id}/count",
    operation_id="placeosModuleCount",
    summary="Count the modules of each name (moduleTypes), or of one (moduleCount)",
    response_model=dict[str, int],
    dependencies=[BY_SYSTEM_PROXIED],
    responses=problems(401, 404),
)
async def module_count(
    system_id: str,
    targets: TargetsDep,
    module: Annotated[str | None, Query(description="count only this name")] = None,
) -> dict[str, int]:
    await targets.ensure_known_system(system_id)
    counts: dict[str, int] = {}
    for name, _ in targets.systems.index(system_id).positions:
        counts[name] = counts.get(name, 0) + 1
    return {"count": counts.get(module, 0)} if module is not None else counts


@router.get(
    "/{system_id}/functions/{module_key}",
    operation_id="placeosFunctionList",
    summary="List a module's methods in PlaceOS's shape (functionList)",
    response_model=dict[str, Any],
    dependencies=[BY_SYSTEM_PROXIED],
    responses={**NOT_MODIFIED, **problems(401, 404)},
)
async def function_list(
    request: Request, system_id: str, module_key: str, targets: TargetsDep
) -> Response:
    handle = await module_at(targets, system_id, module_key)
    return live_json(request, placeos_functions(handle.funcs()))


@router.get(
    "/{system_id}/{module_key}",
    operation_id="placeosModuleState",
    summary="Read a module's status variables (systemModuleState), module_key as Display_1",
    response_model=dict[str, Any],
    dependencies=[BY_SYSTEM_PROXIED],
    responses={**NOT_MODIFIED, **problems(401, 404)},
)
async def module_state(
    request: Request, system_id: str, module_key: str, targets: TargetsDep
) -> Response:
    handle = await module_at(targets, system_id, module_key)
    return live_json(request, handle.state())


@router.get(
    "/{system_id}/{module_key}/{status}",
    operation_id="placeosLookupModuleState",
    summary="Read one status variable of a module (lookupSystemModuleState)",
    response_model=Any,
    dependencies=[BY_SYSTEM_PROXIED],
    responses={**NOT_MODIFIED, **problems(401, 404)},
)
async def lookup_module_state(
    request: Request, system_id: str, module_key: str, status: str, targets: TargetsDep
) -> Response:
    state = (await module_at(targets, system_id, module_key)).state()
    if status not in state:
        raise NotFound(f"{module_key} of system {system_id} has no status {status!r}")
    return live_json(request, state[status])


@router.post(
    "/{system_id}/{module_key}/{method}",
    operation_id="placeosExecute",
    summary="Run a method of a module (executeOnSystem); the body is the arguments array",
    response_model=Any,
    dependencies=[BY_SYSTEM_PROXIED],
    responses=EXEC_PROBLEMS,
)
async def execute(
    system_id: str,
    module_key: str,
    method: str,
    targets: TargetsDep,
    args: Annotated[list[Any] | None, Body(description="the method's arguments")] = None,
) -> JSONResponse:
    handle = await module_at(targets, system_id, module_key)
    return JSONResponse(await handle.exec(method, args or []))


async def module_at(targets: RuntimeTargets, system_id: str, module_key: str) -> ModuleHandle:
    """Module ``Display_1`` of the system."""
    name, index = module_position(module_key)
    return await targets.system_module(system_id, name, index)


def module_position(key: str) -> tuple[str, int]:
    """``Display_2`` → ``("Display", 2)``; a name without an index is the first."""
    name, _, index = key.rpartition("_")
    if name and index.isdigit() and int(index) >= 1:
        return name, int(index)
    return key, 1


def placeos_functions(funcs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``funcs`` as PlaceOS describes methods: ``{arity, params: {name: [type, default?]},
    order}`` (our ``doc`` kept alongside)."""
    described: dict[str, dict[str, Any]] = {}
    for method, func in funcs.items():
        params = [p for p in func.get("params", []) if p.get("kind") not in ("var_keyword",)]
        described[method] = {
            "arity": len(params),
            "params": {
                p["name"]: [str(p.get("annotation", "Any"))]
                + ([p["default"]] if "default" in p else [])
                for p in params
            },
            "order": [p["name"] for p in params],
            "doc": func.get("doc"),
        }
    return described
