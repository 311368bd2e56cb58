"""Dependencies the routes inject, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection, Request

from app.node import Node
from app.services.auth import Principal, require_admin, require_room
from app.services.catalog import Catalog
from app.services.control import ControlService, PlacementSource

bearer = HTTPBearer(auto_error=False, description="an API token: Authorization: Bearer <token>")


async def get_node(connection: HTTPConnection) -> Node:
    return cast(Node, connection.app.state.node)


NodeDep = Annotated[Node, Depends(get_node)]


async def get_control(node: NodeDep) -> ControlService:
    return node.control


ControlDep = Annotated[ControlService, Depends(get_control)]


async def get_placement(node: NodeDep) -> PlacementSource:
    return node.placement


PlacementDep = Annotated[PlacementSource, Depends(get_placement)]


async def get_catalog(node: NodeDep) -> Catalog:
    return node.catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


#: RFC 6750 §2.3: a token in the query survives the cross-origin redirects between
#: master and edge, where HTTP clients (curl -L, httpx) drop the Authorization header.
access_token = APIKeyQuery(
    name="access_token",
    auto_error=False,
    description="the bearer token as a query parameter, for clients that follow redirects",
)

#: What the PlaceOS front-end library sends when it holds an API key; any token works.
api_key = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="an API token, as PlaceOS front ends send API keys",
)


async def current_user(
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    query_token: Annotated[str | None, Depends(access_token)],
    key: Annotated[str | None, Depends(api_key)],
) -> Principal:
    """The caller; a room panel's device key is refused (403) unless the route takes
    :data:`RoomUser` instead."""
    principal = await node.auth.authenticate(chosen_token(credentials, key, query_token))
    require_room(principal, None)
    return principal


async def room_user(
    connection: HTTPConnection,
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    query_token: Annotated[str | None, Depends(access_token)],
    key: Annotated[str | None, Depends(api_key)],
) -> Principal:
    """The caller of a route about the system in its ``system_id`` path parameter: any
    user, or a device key of that very system (README: Room panels)."""
    principal = await node.auth.authenticate(chosen_token(credentials, key, query_token))
    require_room(principal, connection.path_params.get("system_id"))
    return principal


def chosen_token(
    credentials: HTTPAuthorizationCredentials | None, key: str | None, query_token: str | None
) -> str | None:
    """The token a request presents: the bearer header, else X-API-Key, else ?access_token."""
    return credentials.credentials if credentials else key or query_token


async def presented_token(request: Request) -> str | None:
    """The token :func:`current_user` authenticates, read outside dependency injection
    (in :func:`chosen_token`'s order, each place read only when the one before is empty)."""
    credentials = await bearer(request)
    if credentials:
        return credentials.credentials
    return await api_key(request) or await access_token(request)


CurrentUser = Annotated[Principal, Depends(current_user)]
RoomUser = Annotated[Principal, Depends(room_user)]


async def admin_user(user: CurrentUser) -> Principal:
    require_admin(user)
    return user


AdminUser = Annotated[Principal, Depends(admin_user)]
