"""Users and their API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response

from app.models import IssuedToken, TokenInfo, TokenRequest, User
from app.routers.conditional import cached_json, version_etag
from app.routers.crud import crud_router, problems
from app.routers.deps import CatalogDep, CurrentUser, NodeDep
from app.services.auth import require_self_or_admin
from app.services.catalog import USER

router = APIRouter(tags=["users"])


@router.get(
    "/users/current",
    operation_id="getCurrentUser",
    summary="Get the user the token belongs to",
    response_model=User,
    responses=problems(401),
)
async def current(request: Request, catalog: CatalogDep, user: CurrentUser) -> Response:
    doc = await catalog.get(USER, user.user_id)
    return cached_json(request, doc.as_json(), etag=version_etag(doc.version))


@router.post(
    "/users/{user_id}/tokens",
    operation_id="issueUserToken",
    summary="Issue an API token (the token is shown once)",
    status_code=201,
    responses=problems(401, 403, 404, 422),
)
async def issue_token(
    user_id: str,
    node: NodeDep,
    user: CurrentUser,
    body: Annotated[TokenRequest | None, Body()] = None,
) -> IssuedToken:
    require_self_or_admin(user, user_id)
    return await node.auth.issue(user_id, (body or TokenRequest()).name)


@router.get(
    "/users/{user_id}/tokens",
    operation_id="listUserTokens",
    summary="List a user's tokens, without their secret part",
    responses=problems(401, 403, 404),
)
async def list_tokens(user_id: str, node: NodeDep, user: CurrentUser) -> list[TokenInfo]:
    require_self_or_admin(user, user_id)
    return await node.auth.tokens(user_id)


@router.delete(
    "/users/{user_id}/tokens/{token_id}",
    operation_id="revokeUserToken",
    summary="Revoke a token",
    status_code=204,
    response_class=Response,
    responses=problems(401, 403, 404),
)
async def revoke_token(user_id: str, token_id: str, node: NodeDep, user: CurrentUser) -> Response:
    require_self_or_admin(user, user_id)
    await node.auth.revoke(user_id, token_id)
    return Response(status_code=204)


router.include_router(crud_router(USER))
