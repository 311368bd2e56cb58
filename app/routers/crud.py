"""The five CRUD routes every configuration resource shares, built once per kind.

Bodies are taken as JSON objects and validated by the catalog, so a create and a
merge-patch give the same problem+json naming the field; the OpenAPI document still
describes them with each kind's schema.
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.models import PageOut
from app.node import Node
from app.routers.conditional import cached_json, if_match_version, version_etag
from app.routers.deps import AdminUser, CatalogDep, CurrentUser, NodeDep
from app.routers.problems import PROBLEM_JSON
from app.services.catalog import Kind
from app.store.base import Document

#: Extra response fields after a create (an edge's one-time ``secret``).
AfterCreate = Callable[[Node, Document], Awaitable[dict[str, Any]]]

JsonBody = Annotated[dict[str, Any], Body()]


def request_body(model: type[BaseModel], *, partial: bool = False) -> dict[str, Any]:
    """An inline OpenAPI request body for ``model`` (all optional for a merge patch)."""
    schema = model.model_json_schema(mode="validation")
    if partial:
        schema.pop("required", None)
        schema["description"] = "JSON merge patch (RFC 7396): null resets a field"
    content_types = ["application/json"] + (["application/merge-patch+json"] if partial else [])
    return {
        "requestBody": {
            "required": True,
            "content": {ct: {"schema": schema} for ct in content_types},
        }
    }


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"description": "problem details", "content": {PROBLEM_JSON: {}}}
        for status in statuses
    }


def document_response(doc: Document, *, status_code: int = 200, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {**doc.as_json(), **extra},
        status_code=status_code,
        headers={"ETag": version_etag(doc.version)},
    )


def crud_router(
    kind: Kind,
    *,
    filters: Mapping[str, str] | None = None,
    after_create: AfterCreate | None = None,
    create_model: type[BaseModel] | None = None,
) -> APIRouter:
    """``POST``/``GET`` on the collection and ``GET``/``PATCH``/``DELETE`` on items.

    ``filters`` maps query parameters to indexed fields (``?edge_control_id=``).
    """
    name = kind.name.capitalize()
    plural = kind.plural.capitalize()
    filters = filters or {}
    router = APIRouter(prefix=f"/{kind.plural}", tags=[kind.plural])
    filter_params = [
        {"name": query, "in": "query", "required": False, "schema": {"type": "string"}}
        for query in filters
    ]

    @router.get(
        "",
        operation_id=f"list{plural}",
        summary=f"List {kind.plural}",
        response_model=PageOut[kind.document_model],  # type: ignore[name-defined]
        responses=problems(401, 422),
        openapi_extra={"parameters": filter_params} if filter_params else None,
    )
    async def list_documents(
        request: Request,
        catalog: CatalogDep,
        _user: CurrentUser,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[str | None, Query(description="continue after this id")] = None,
    ) -> Response:
        where = {
            field: request.query_params[query]
            for query, field in filters.items()
            if query in request.query_params
        }
        page = await catalog.find(kind, where=where or None, after=after, limit=limit)
        headers = {}
        if page.next_after is not None:
            query = {**request.query_params, "after": page.next_after}
            headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
        content = {
            "items": [doc.as_json() for doc in page.items],
            "total": page.total,
            "next": page.next_after,
        }
        return cached_json(request, content, headers=headers)

    @router.post(
        "",
        operation_id=f"create{name}",
        summary=f"Create a {kind.name}",
        status_code=201,
        response_model=create_model or kind.document_model,
        responses=problems(401, 403, 422),
        openapi_extra=request_body(kind.create_model),
    )
    async def create_document(
        request: Request, node: NodeDep, _admin: AdminUser, body: JsonBody
    ) -> Response:
        doc = await node.catalog.create(kind, body)
        extra = await after_create(node, doc) if after_create else {}
        response = document_response(doc, status_code=201, **extra)
        response.headers["Location"] = f"{request.url.path}/{doc.id}"
        return response

    @router.get(
        "/{doc_id}",
        operation_id=f"get{name}",
        summary=f"Get a {kind.name}",
        response_model=kind.document_model,
        responses={**problems(401, 404), 304: {"description": "not modified"}},
    )
    async def get_document(
        request: Request, doc_id: str, catalog: CatalogDep, _user: CurrentUser
    ) -> Response:
        doc = await catalog.get(kind, doc_id)
        return cached_json(request, doc.as_json(), etag=version_etag(doc.version))

    @router.patch(
        "/{doc_id}",
        operation_id=f"update{name}",
        summary=f"Update a {kind.name} (JSON merge patch; If-Match for CAS)",
        response_model=kind.document_model,
        responses=problems(401, 403, 404, 412, 422),
        openapi_extra=request_body(kind.fields_model, partial=True),
    )
    async def update_document(
        request: Request, doc_id: str, catalog: CatalogDep, _admin: AdminUser, body: JsonBody
    ) -> Response:
        doc = await catalog.update(kind, doc_id, body, if_match=if_match_version(request))
        return document_response(doc)

    @router.delete(
        "/{doc_id}",
        operation_id=f"delete{name}",
        summary=f"Delete a {kind.name}",
        status_code=204,
        response_class=Response,
        responses=problems(401, 403, 404, 409, 412),
    )
    async def delete_document(
        request: Request, doc_id: str, catalog: CatalogDep, _admin: AdminUser
    ) -> Response:
        await catalog.delete(kind, doc_id, if_match=if_match_version(request))
        return Response(status_code=204)

    return router
