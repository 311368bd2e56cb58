"""The five CRUD routes every configuration resource shares, built once per kind.

Bodies are taken as JSON objects and validated by the catalog, so a create and a
merge-patch give the same problem+json naming the field; the OpenAPI document still
describes them with each kind's schema.
"""

import json
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic import create_model as subclass_named

from app.models import PageOut
from app.node import Node
from app.openapi import header_refs
from app.routers.conditional import cached_json, if_match_version, version_etag
from app.routers.deps import AdminUser, CatalogDep, CurrentUser, NodeDep
from app.routers.problems import PROBLEM_JSON
from app.services.catalog import Kind
from app.store.base import Document

#: Extra response fields after a create (an edge's one-time ``secret``).
AfterCreate = Callable[[Node, Document], Awaitable[dict[str, Any]]]

JsonBody = Annotated[dict[str, Any], Body()]

MERGE_PATCH = (
    "A JSON merge patch (RFC 7396): a field left out stays as it is; null resets a field "
    "the document can do without to its default (a required field cannot be null)."
)


def request_body(title: str, schema: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """An OpenAPI request body of ``schema``, named ``title`` (a merge patch takes
    ``application/merge-patch+json`` as well)."""
    content_types = ["application/json"] + (["application/merge-patch+json"] if partial else [])
    media: dict[str, Any] = {"schema": {**schema, "title": title}}
    if partial:  # what /docs offers to send: one field, never every field with a placeholder
        media["example"] = {"name": "Renamed"}
    return {"requestBody": {"required": True, "content": dict.fromkeys(content_types, media)}}


def merge_patch_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s fields as a merge patch: each optional, none with a default (a
    generated client sends only what it was given), null only where the model allows
    the field to be absent."""
    schema = model.model_json_schema(mode="validation")
    if "$defs" in schema:
        raise ValueError(f"{model.__name__}: nested models are not supported in a patch")
    required = set(schema.pop("required", ()))
    properties = {}
    for name, field in schema["properties"].items():
        field = _without_defaults(field)
        if name not in required and not _nullable(field):
            outer = {k: field.pop(k) for k in ("title", "description") if k in field}
            field = {**outer, "anyOf": [field, {"type": "null"}]}
        default = model.model_fields[name].get_default(call_default_factory=True)
        if name not in required:
            reset = (
                f"null: reset to {json.dumps(default)}" if default is not None else "null: remove"
            )
            field["description"] = "; ".join(filter(None, [field.get("description"), reset]))
        properties[name] = field
    return {**schema, "properties": properties, "description": MERGE_PATCH}


def _without_defaults(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_defaults(v) for k, v in schema.items() if k != "default"}
    if isinstance(schema, list):
        return [_without_defaults(item) for item in schema]
    return schema


def _nullable(field: dict[str, Any]) -> bool:
    return field.get("type") == "null" or any(
        option.get("type") == "null" for option in field.get("anyOf", ())
    )


#: The answer of a read whose ``If-None-Match`` names the current representation.
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not Modified: the representation named by If-None-Match is current"}
}


def problems(*statuses: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """Error answers a route gives, each a status or ``(status, why)``; app/openapi.py
    adds their bodies, and the answers the route's declarations imply."""
    declared: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        code, why = status if isinstance(status, tuple) else (status, HTTPStatus(status).phrase)
        declared[code] = {"description": why, "content": {PROBLEM_JSON: {}}}
    return declared


def a(noun: str) -> str:
    """``noun`` with its indefinite article ("an edge", "a user": by sound, not letter)."""
    return f"an {noun}" if noun[0] in "aeio" else f"a {noun}"


def next_link(request: Request, **changes: str) -> str:
    """A ``Link`` to this request's URL with ``changes`` to its query, percent-encoded
    (a space is %20, as clients decoding with ``decodeURIComponent`` expect)."""
    query = urlencode({**request.query_params, **changes}, quote_via=quote)
    return f'<{request.url.path}?{query}>; rel="next"'


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
    page_model = subclass_named(
        f"{kind.document_model.__name__}Page",
        __base__=PageOut[kind.document_model],  # type: ignore[name-defined]
    )
    create_schema = kind.create_model.model_json_schema(mode="validation")

    @router.get(
        "",
        operation_id=f"list{plural}",
        summary=f"List {kind.plural}",
        response_model=page_model,
        responses={200: header_refs("Link"), **NOT_MODIFIED, **problems(401, 422)},
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
            headers["Link"] = next_link(request, after=page.next_after)
        content = {
            "items": [doc.as_json() for doc in page.items],
            "total": page.total,
            "next": page.next_after,
        }
        return cached_json(request, content, headers=headers)

    @router.post(
        "",
        operation_id=f"create{name}",
        summary=f"Create {a(kind.name)}",
        status_code=201,
        response_model=create_model or kind.document_model,
        responses={201: header_refs("Location", "ETag"), **problems(401, 403, 422)},
        openapi_extra=request_body(f"{name}Create", create_schema),
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
        summary=f"Get {a(kind.name)}",
        response_model=kind.document_model,
        responses={**NOT_MODIFIED, **problems(401, 404)},
    )
    async def get_document(
        request: Request, doc_id: str, catalog: CatalogDep, _user: CurrentUser
    ) -> Response:
        doc = await catalog.get(kind, doc_id)
        return cached_json(request, doc.as_json(), etag=version_etag(doc.version))

    @router.patch(
        "/{doc_id}",
        operation_id=f"update{name}",
        summary=f"Update {a(kind.name)}",
        description=MERGE_PATCH + " With If-Match, only over that version (else 412).",
        response_model=kind.document_model,
        responses={200: header_refs("ETag"), **problems(401, 403, 404, 412, 422)},
        openapi_extra=request_body(
            f"{name}Patch", merge_patch_schema(kind.fields_model), partial=True
        ),
    )
    async def update_document(
        request: Request, doc_id: str, catalog: CatalogDep, _admin: AdminUser, body: JsonBody
    ) -> Response:
        doc = await catalog.update(kind, doc_id, body, if_match=if_match_version(request))
        return document_response(doc)

    @router.delete(
        "/{doc_id}",
        operation_id=f"delete{name}",
        summary=f"Delete {a(kind.name)}",
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
