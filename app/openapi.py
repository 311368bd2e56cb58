"""The OpenAPI document: every answer the server sends, so generated clients know them all.

FastAPI derives the operations, parameters and bodies from the routes. What it cannot
see is declared elsewhere in the code, and is added here from those declarations
rather than from a list kept beside them:

* every error is ``application/problem+json`` (:class:`app.models.Problem`), a 307 too;
* a route that depends on the caller's token answers 401, and 403 to a room panel's
  device key (any other room's, on a route about one room), on an admin 403;
* a route that declares client routing (:class:`app.routers.routing.RoutedBy`), and on
  an edge every configuration write, answers 307 with ``Location``, 502, 503 with
  ``Retry-After`` and 504, takes ``Prefer: routing=…`` and says ``Preference-Applied``;
* the boot gate answers every API route 503 with ``Retry-After`` until boot completes;
* a read that answers 304 takes ``If-None-Match`` and sends ``ETag``; a write that
  answers 412 takes ``If-Match``;
* every answer carries ``X-Engine-Node``, any operation may fail with 500.

Request bodies get one named schema each, so generators make one model per body.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import BaseRoute

from app.models import Problem
from app.routers.deps import admin_user, current_user, room_user
from app.routers.middleware import BootGate
from app.routers.problems import PROBLEM_JSON
from app.routers.routing import routing_declaration, sent_to_master

PACKAGE = "engine-ha"
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

SCHEMAS = "#/components/schemas/"

#: The response headers the server sends, each described once.
HEADERS: dict[str, dict[str, Any]] = {
    "X-Engine-Node": {
        "description": "the server that answered: `master` or `edge:<id>` (a proxied answer "
        "keeps the server that made it)",
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "the representation's version: send it back as If-None-Match to "
        "revalidate, or as If-Match to write only over this version",
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "how long the answer may be kept (`no-cache`: revalidate every use)",
        "schema": {"type": "string"},
    },
    "Location": {
        "description": "307: the same path and query on the server to ask instead; "
        "201: the new document",
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "Retry-After": {
        "description": "seconds to wait before asking again",
        "schema": {"type": "integer", "minimum": 1},
    },
    "Preference-Applied": {
        "description": "the routing applied, when the request asked for one with Prefer",
        "schema": {"type": "string", "enum": ["routing=redirect", "routing=proxy"]},
    },
    "Via": {
        "description": "present when the answer was proxied from the controlling server",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'the next page, `<URL>; rel="next"`, absent on the last page; the '
        "URL is percent-encoded (RFC 3986: a space is %20)",
        "schema": {"type": "string"},
    },
    "X-Total-Count": {
        "description": "how many items match, over all pages",
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW-Authenticate": {
        "description": "the authentication scheme expected: Bearer",
        "schema": {"type": "string"},
    },
}

#: The request headers that steer an answer, each described once.
PARAMETERS: dict[str, dict[str, Any]] = {
    "Prefer": {
        "name": "Prefer",
        "in": "header",
        "required": False,
        "description": "`routing=redirect` (a 307 to the controlling server) or "
        "`routing=proxy` (its answer, relayed) when another server controls the target; "
        "without it the server's ENGINE_CLIENT_ROUTING applies",
        "schema": {"type": "string"},
    },
    "If-None-Match": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "the ETag of the representation held: 304 without a body if it is "
        "still current",
        "schema": {"type": "string"},
    },
    "If-Match": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": "the ETag of the version this write applies to: 412 when the "
        "document moved on (`*`: any version)",
        "schema": {"type": "string"},
    },
}

REDIRECT = (
    "another server controls this: ask again at Location (the same path and query there). "
    "HTTP clients drop Authorization when they follow a redirect to another origin; carry "
    "the token as the access_token query parameter to follow it (README, Client routing)"
)
#: Why each status may come, by what declares it.
REASONS = {
    "booting": {503: "the server is booting (Retry-After)"},
    "authenticated": {
        401: "no valid token (Authorization: Bearer, X-API-Key or access_token)",
        403: "a room panel's device key, which reads and calls its own room only",
    },
    "admin": {403: "the token's user may not do this"},
    "routed": {
        307: REDIRECT,
        502: "the controlling server failed (proxied)",
        503: "the controlling server cannot be reached (Retry-After while a failover is pending)",
        504: "the controlling server did not answer in time (proxied)",
    },
    "edge_write": {
        307: "on an edge: the master decides configuration. " + REDIRECT,
        502: "on an edge: the master failed (proxied)",
        503: "on an edge: the master cannot be reached",
        504: "on an edge: the master did not answer in time (proxied)",
    },
    "any": {
        400: "the path or query is not UTF-8 or holds a NUL byte",
        500: "an unexpected error (the server's log has it)",
    },
    "body": {
        400: "the body is not parseable JSON",
        413: "the body, or the document it would produce, exceeds ENGINE_MAX_DOCUMENT_BYTES",
    },
}


def api_version() -> str:
    """The package's version, which the document carries (pyproject.toml)."""
    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # run from a checkout that was never installed
        return str(tomllib.loads(PYPROJECT.read_text())["project"]["version"])


def header_refs(*names: str) -> dict[str, Any]:
    """A response's ``headers``, by reference to :data:`HEADERS`."""
    return {"headers": {name: _header(name) for name in names}}


def install(app: FastAPI) -> None:
    """Have ``app`` serve (and ``python -m app openapi`` write) the completed document."""
    derived = app.openapi
    completed: dict[str, Any] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal completed
        if completed is None:
            completed = complete(derived(), app.routes)
        return completed

    app.openapi = openapi  # type: ignore[method-assign]


def complete(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """``schema`` (FastAPI's) with everything the routes declare outside its reach."""
    components = schema.setdefault("components", {})
    components["headers"] = dict(HEADERS)
    components["parameters"] = dict(PARAMETERS)
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    problem = Problem.model_json_schema(ref_template=SCHEMAS + "{model}")
    schemas.update(problem.pop("$defs", {}), Problem=problem)
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        path = str(route.path_format)
        for method in sorted(route.methods or ()):
            operation = schema["paths"][path][method.lower()]
            _complete_operation(operation, method, _declarations(route, path, method))
            _name_request_body(operation, schemas)
    return schema


def _declarations(route: RouteContext, path: str, method: str) -> set[str]:
    """What the route declares that decides its answers (keys of :data:`REASONS`)."""
    calls = set(_calls(route.dependant))
    found = {"any"}
    if path.startswith("/api/") and path not in BootGate.OPEN_PATHS:
        found.add("booting")
    if current_user in calls or room_user in calls:
        found.add("authenticated")
    if admin_user in calls:
        found.add("admin")
    if routing_declaration(route) is not None:
        found.add("routed")
    elif sent_to_master(method, path):
        found.add("edge_write")
    return found


def _calls(dependant: Dependant) -> Iterator[object]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _complete_operation(operation: dict[str, Any], method: str, declared: set[str]) -> None:
    responses: dict[str, Any] = operation["responses"]
    if "requestBody" in operation:
        declared.add("body")
    reasons: dict[str, list[str]] = {}
    for declaration in sorted(declared):
        for code, reason in REASONS[declaration].items():
            reasons.setdefault(str(code), []).append(reason)
    for status, why in sorted(reasons.items()):
        response = responses.setdefault(status, {})
        own = response.get("description")
        generic = (None, "", "Validation Error", HTTPStatus(int(status)).phrase)
        response["description"] = "; ".join(([own] if own not in generic else []) + why)
    routed = declared & {"routed", "edge_write"}
    for status, response in responses.items():
        code = int(status)
        if code == 422 and response.get("description") in (
            "Validation Error",
            "Unprocessable Entity",
        ):
            response["description"] = "a field is not acceptable (the problem names it and why)"
        if code >= 400 or code == 307:
            response["content"] = {PROBLEM_JSON: {"schema": {"$ref": SCHEMAS + "Problem"}}}
        if method == "HEAD":
            response.pop("content", None)
        headers = response.setdefault("headers", {})
        headers["X-Engine-Node"] = _header("X-Engine-Node")
        if code == 401:
            headers["WWW-Authenticate"] = _header("WWW-Authenticate")
        if code == 503:
            headers["Retry-After"] = _header("Retry-After")
        if code == 307:
            headers["Location"] = {**_header("Location"), "required": True}
        if routed:
            headers["Preference-Applied"] = _header("Preference-Applied")
            if code != 307:
                headers["Via"] = _header("Via")
    if "304" in responses:
        _add_parameter(operation, "If-None-Match")
        for cached in ("200", "304"):
            responses[cached]["headers"].update(
                {"ETag": _header("ETag"), "Cache-Control": _header("Cache-Control")}
            )
    if "412" in responses:
        _add_parameter(operation, "If-Match")
    if routed:
        _add_parameter(operation, "Prefer")


def _header(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/headers/{name}"}


def _add_parameter(operation: dict[str, Any], name: str) -> None:
    parameters = operation.setdefault("parameters", [])
    reference = {"$ref": f"#/components/parameters/{name}"}
    if reference not in parameters:
        parameters.append(reference)


def _name_request_body(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """An object body described inline under its ``title`` becomes a named schema, shared
    by every content type it is accepted as (one model, not one per content type)."""
    content = operation.get("requestBody", {}).get("content", {})
    for media in content.values():
        body = media.get("schema", {})
        if "$ref" in body or body.get("type") != "object" or "title" not in body:
            continue
        name = body["title"]
        if schemas.setdefault(name, body) != body:
            raise ValueError(f"two request bodies are both named {name!r}")
        media["schema"] = {"$ref": SCHEMAS + name}
