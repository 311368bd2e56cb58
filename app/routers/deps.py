"""Dependencies the routes inject, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends
from starlette.requests import HTTPConnection
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.node import Node
from app.services.auth import Principal, require_admin
from app.services.catalog import Catalog

bearer = HTTPBearer(auto_error=False, description="an API token: Authorization: Bearer <token>")


def get_node(connection: HTTPConnection) -> Node:
    return cast(Node, connection.app.state.node)


NodeDep = Annotated[Node, Depends(get_node)]


def get_catalog(node: NodeDep) -> Catalog:
    return node.catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


async def current_user(
    node: NodeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return await node.auth.authenticate(credentials.credentials if credentials else None)


CurrentUser = Annotated[Principal, Depends(current_user)]


async def admin_user(user: CurrentUser) -> Principal:
    require_admin(user)
    return user


AdminUser = Annotated[Principal, Depends(admin_user)]
