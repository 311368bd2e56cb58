"""Device keys of a system: API keys a room panel signs in with (README: Room panels).

System admins issue, list and revoke them; on an edge the writes go to the master like
every configuration write.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response

from app.routers.crud import problems
from app.routers.deps import AdminUser, NodeDep
from app.services.device_keys import (
    DeviceKeyInfo,
    DeviceKeyRequest,
    DeviceKeys,
    IssuedDeviceKey,
    panel_link,
)

router = APIRouter(prefix="/systems/{system_id}/keys", tags=["panel"])


async def get_device_keys(node: NodeDep) -> DeviceKeys:
    return DeviceKeys(node.store, node.catalog, node.auth)


DeviceKeysDep = Annotated[DeviceKeys, Depends(get_device_keys)]


@router.post(
    "",
    operation_id="issueDeviceKey",
    summary="Issue a device key for the system's room panel (the key is shown once)",
    status_code=201,
    responses=problems(401, 403, 404, 422),
)
async def issue(
    system_id: str,
    node: NodeDep,
    keys: DeviceKeysDep,
    admin: AdminUser,
    body: Annotated[DeviceKeyRequest | None, Body()] = None,
) -> IssuedDeviceKey:
    issued = await keys.issue(system_id, (body or DeviceKeyRequest()).name, by=admin.user_id)
    link = panel_link(node.settings.base_url, system_id, issued.key)
    return issued.model_copy(update={"panel_url": link})


@router.get(
    "",
    operation_id="listDeviceKeys",
    summary="The system's device keys, without the keys themselves",
    responses=problems(401, 403, 404),
)
async def listed(system_id: str, keys: DeviceKeysDep, _admin: AdminUser) -> list[DeviceKeyInfo]:
    return await keys.listed(system_id)


@router.delete(
    "/{key_id}",
    operation_id="revokeDeviceKey",
    summary="Revoke a device key: the panel using it is refused at its next call",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404),
)
async def revoke(system_id: str, key_id: str, keys: DeviceKeysDep, _admin: AdminUser) -> Response:
    await keys.revoke(system_id, key_id)
    return Response(status_code=204)
