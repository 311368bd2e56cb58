"""The committed OpenAPI document matches the app, with stable operation ids."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

from app.__main__ import OPENAPI_PATH, openapi_document


def test_committed_document_is_current() -> None:
    assert OPENAPI_PATH.read_text() == openapi_document(), (
        "openapi/openapi.json is stale: run `python -m app openapi`"
    )


def test_every_operation_has_a_unique_camel_case_id() -> None:
    spec = json.loads(openapi_document())
    ids = [
        operation["operationId"]
        for path in spec["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    ]
    assert len(ids) == len(set(ids))
    assert all(op[0].islower() and "_" not in op for op in ids), ids
    for expected in ("createEdge", "listSystems", "updateModule", "deleteDriver", "getReady"):
        assert expected in ids


DOCUMENT: dict[str, Any] = json.loads(openapi_document())
METHODS = ("get", "head", "post", "put", "patch", "delete")


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolved(node: Any, seen: frozenset[str] = frozenset()) -> Any:
    """``node`` with every ``$ref`` replaced by what it names, recursively."""
    if isinstance(node, list):
        return [resolved(item, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        assert ref not in seen, f"{ref} refers to itself"
        target: Any = DOCUMENT
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return resolved({**target, **{k: v for k, v in node.items() if k != "$ref"}}, seen | {ref})
    return {key: resolved(value, seen) for key, value in node.items()}


def keys_anywhere(node: Any, key: str, where: str = "") -> list[str]:
    if isinstance(node, dict):
        found = [where] if key in node else []
        return found + [p for k, v in node.items() for p in keys_anywhere(v, key, f"{where}/{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in keys_anywhere(v, key, f"{where}/{i}")]
    return []


def test_every_reference_resolves() -> None:
    resolved(DOCUMENT["paths"])


def test_the_version_is_the_packages() -> None:
    pyproject = tomllib.loads((OPENAPI_PATH.parent.parent / "pyproject.toml").read_text())
    assert DOCUMENT["info"]["version"] == pyproject["project"]["version"]


def test_no_patch_request_schema_carries_a_default_anywhere() -> None:
    patches = [(path, op) for method, path, op in operations() if method == "PATCH"]
    assert len(patches) >= 5
    for path, operation in patches:
        body = resolved(operation["requestBody"])
        assert body["content"], path
        defaults = keys_anywhere(body, "default")
        assert not defaults, f"PATCH {path} has defaults at {defaults}"


def test_each_patch_body_is_one_named_schema_with_every_field_optional() -> None:
    names = set()
    for method, path, operation in operations():
        if method != "PATCH":
            continue
        refs = {
            media["schema"].get("$ref") for media in operation["requestBody"]["content"].values()
        }
        assert len(refs) == 1 and None not in refs, f"PATCH {path}: {refs}"
        name = refs.pop().rsplit("/", 1)[1]
        assert name.endswith("Patch")
        names.add(name)
        schema = DOCUMENT["components"]["schemas"][name]
        assert "required" not in schema, name
    assert names == {"EdgePatch", "SystemPatch", "ModulePatch", "DriverPatch", "UserPatch"}


def test_null_is_allowed_only_where_the_model_can_do_without_the_field() -> None:
    edge = DOCUMENT["components"]["schemas"]["EdgePatch"]["properties"]
    nullable = {name for name, field in edge.items() if {"type": "null"} in field.get("anyOf", [])}
    assert "name" not in nullable
    assert {"description", "timeout", "window_start", "admins", "api_url"} <= nullable


def test_routed_operations_declare_the_redirect_and_what_explains_it() -> None:
    routed = set()
    for method, path, operation in operations():
        parameters = [p.get("$ref", "") for p in operation.get("parameters", [])]
        if "#/components/parameters/Prefer" not in parameters:
            assert "307" not in operation["responses"], f"{method} {path}"
            continue
        routed.add(operation["operationId"])
        responses = operation["responses"]
        redirect = responses["307"]
        assert redirect["headers"]["Location"]["required"] is True
        assert "Preference-Applied" in redirect["headers"]
        assert "access_token" in redirect["description"]
        assert "Retry-After" in responses["503"]["headers"]
        assert {"502", "504"} <= set(responses)
        assert "Via" in responses[next(s for s in responses if s.startswith("2"))]["headers"]
    assert {
        "execSystem",
        "execModule",
        "getModuleState",
        "placeosExecute",
        "updateEdge",
        "createSystem",
        "restoreEdge",
    } <= routed
    assert not {"listSystems", "getEdge", "getEdgeControl"} & routed


def test_every_answer_names_the_node_and_every_error_is_problem_json() -> None:
    problem = {"$ref": "#/components/schemas/Problem"}
    for method, path, operation in operations():
        for status, response in operation["responses"].items():
            label = f"{method} {path} {status}"
            assert "X-Engine-Node" in response["headers"], label
            if method != "HEAD" and (int(status) >= 400 or status == "307"):
                assert response["content"] == {"application/problem+json": {"schema": problem}}
        if method != "HEAD":
            assert "500" in operation["responses"], f"{method} {path}"
        if path.startswith("/api/") and path not in ("/api/health", "/api/ready", "/metrics"):
            assert "Retry-After" in operation["responses"]["503"]["headers"], f"{method} {path}"


def test_conditional_requests_are_declared() -> None:
    for method, path, operation in operations():
        parameters = [p.get("$ref", "") for p in operation.get("parameters", [])]
        responses = operation["responses"]
        if "304" in responses:
            assert "#/components/parameters/If-None-Match" in parameters
            assert "ETag" in responses["200"]["headers"], f"{method} {path}"
        if "412" in responses:
            assert "#/components/parameters/If-Match" in parameters
    lists = DOCUMENT["paths"]["/api/systems"]["get"]["responses"]["200"]["headers"]
    assert {"Link", "ETag"} <= set(lists)
    placeos = DOCUMENT["paths"]["/api/engine/v2/systems"]["get"]["responses"]["200"]["headers"]
    assert {"Link", "X-Total-Count"} <= set(placeos)


def test_the_control_documents_and_bodies_are_typed() -> None:
    def schema_of(path: str, method: str, status: str = "200") -> Any:
        content = DOCUMENT["paths"][path][method]["responses"][status]["content"]
        return content["application/json"]["schema"]

    edge = "/api/edges/{edge_id}"
    assert schema_of(f"{edge}/control", "get") == {"$ref": "#/components/schemas/ControlDocument"}
    assert schema_of(f"{edge}/restore", "post") == {"$ref": "#/components/schemas/ControlDocument"}
    assert schema_of(f"{edge}/takeover", "post") == {"$ref": "#/components/schemas/ControlDocument"}
    assert schema_of("/api/status", "get") == {"$ref": "#/components/schemas/StatusSnapshot"}
    assert schema_of("/api/ready", "get") == {"$ref": "#/components/schemas/Ready"}
    assert schema_of("/api/health", "get") == {"$ref": "#/components/schemas/Health"}
    control = DOCUMENT["components"]["schemas"]["ControlDocument"]["properties"]
    assert {"link_error", "link_error_at", "witness", "pending", "retry_after"} <= set(control)


def test_summaries_read_as_english() -> None:
    for method, path, operation in operations():
        summary = operation["summary"]
        assert summary[0].isupper(), f"{method} {path}: {summary}"
        assert not re.search(r"\ba [aeio]", summary), f"{method} {path}: {summary}"
        assert not re.search(r"\b[a-z]+_[a-z]+\b", summary.split("(")[0]), summary
