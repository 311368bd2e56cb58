"""Every operation of the app's own OpenAPI document, fuzzed in-process against a master.

Schemathesis generates valid and invalid requests from the document the app serves
(the one ``python -m app openapi`` commits) and checks each answer: never a 500, and
always a status code, content type, headers and body the document declares. Generation is
derandomized so a failure reproduces, and bounded so the whole run takes seconds.

Generated ids almost never name a document, so every operation with ids in its path
runs a second time with them replaced by documents that exist: the fuzzed bodies and
queries then reach the code behind the lookups.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import requests
import schemathesis
from fastapi import FastAPI
from schemathesis.python import asgi

from app.__main__ import openapi_document
from app.main import create_app
from app.settings import Settings

TOKEN = "fuzz-admin-token"
EXAMPLES_PER_OPERATION = 25

CONFIG = schemathesis.Config.from_dict(
    {
        "headers": {"Authorization": f"Bearer {TOKEN}"},
        "generation": {
            "mode": "all",
            "max-examples": EXAMPLES_PER_OPERATION,
            "deterministic": True,
            "database": "none",
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": False},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
            "response_headers_conformance": {"enabled": True},
        },
    }
)

DOCUMENT: dict[str, Any] = json.loads(openapi_document())
# The status stream never ends by design (server-sent events); its answers are tested in
# tests/unit/services/test_status.py and tests/integration/test_status_stream.py.
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG).exclude(
    operation_id="streamStatus"
)
operations_on_documents = schema.include(path_regex=r"\{")

#: The collection a ``doc_id`` path parameter belongs to, by the path's second segment.
COLLECTION_IDS = {
    "edges": "edge_id",
    "systems": "system_id",
    "modules": "module_id",
    "drivers": "driver_id",
    "users": "user_id",
}


# --- answers outside the fuzzer's reach, checked against the document --------------


BODY_NOT_JSON = "a body that is not UTF-8 JSON is answered 400 problem+json, as documented"
VALIDATION_AS_JSON = "input that fails validation is answered 422 problem+json, as documented"


@dataclass(frozen=True)
class Gap:
    """A request the fuzzer does not make, whose answer the document must declare."""

    method: str
    path: str
    reason: str
    query: str = ""
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def param(self) -> Any:
        kind = "not JSON" if self.reason is BODY_NOT_JSON else "invalid"
        return pytest.param(self, id=f"{self.label} ({kind})")


def body_not_json(method: str, path: str) -> Gap:
    request = {"data": b"\xff\xfe{", "headers": {"Content-Type": "application/json"}}
    return Gap(method, path, BODY_NOT_JSON, request=request)


def invalid_input(method: str, path: str, *, query: str = "", **request: Any) -> Gap:
    return Gap(method, path, VALIDATION_AS_JSON, query=query, request=request)


EDGE_CASES = [
    body_not_json("POST", "/api/drivers"),
    body_not_json("PATCH", "/api/drivers/{doc_id}"),
    body_not_json("POST", "/api/drivers/{driver_id}/reload"),
    body_not_json("POST", "/api/edges"),
    body_not_json("PATCH", "/api/edges/{doc_id}"),
    body_not_json("POST", "/api/edges/{edge_id}/repository"),
    body_not_json("POST", "/api/modules"),
    body_not_json("PATCH", "/api/modules/{doc_id}"),
    body_not_json("POST", "/api/modules/{module_id}/exec"),
    body_not_json("POST", "/api/systems"),
    body_not_json("PATCH", "/api/systems/{doc_id}"),
    body_not_json("POST", "/api/systems/{system_id}/exec"),
    body_not_json("POST", "/api/users"),
    body_not_json("PATCH", "/api/users/{doc_id}"),
    body_not_json("POST", "/api/users/{user_id}/tokens"),
    invalid_input("GET", "/api/edges/{edge_id}/events", query="limit=100000"),
    invalid_input("POST", "/api/edges/{edge_id}/repository", json={"action": "explode"}),
    invalid_input("GET", "/api/systems/{system_id}/funcs"),
]

Case = schemathesis.Case[Any]


# --- the master under test ------------------------------------------------------------


def wait_ready(client: requests.Session, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/api/ready").status_code != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"the master did not boot within {timeout}s")
        time.sleep(0.02)


def created(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


def seed(client: requests.Session) -> dict[str, str]:
    """One document of every kind, wired together; their ids by path parameter name."""
    driver = created(
        client.post(
            "/api/drivers",
            json={
                "name": "Echo",
                "file": "generic/echo.py",
                "class_name": "Echo",
                "role": "service",
            },
        )
    )
    edge = created(client.post("/api/edges", json={"name": "Fuzzed site", "failover": False}))
    system = created(client.post("/api/systems", json={"name": "Fuzzed room"}))
    module = created(
        client.post(
            "/api/modules",
            json={"driver_id": driver["id"], "name": "Echo", "system_id": system["id"]},
        )
    )
    user = created(client.post("/api/users", json={"name": "fuzzed", "admin": False}))
    token = created(client.post(f"/api/users/{user['id']}/tokens", json={"name": "fuzz"}))
    return {
        "driver_id": driver["id"],
        "edge_id": edge["id"],
        "system_id": system["id"],
        "module_id": module["id"],
        "user_id": user["id"],
        "token_id": token["id"],
    }


def in_process(app: FastAPI) -> asgi.ASGIClient:
    """An admin client of ``app``, served in schemathesis' event loop thread."""
    client = asgi.get_client(cast("asgi.ASGIApp", app))
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    return client


class Master:
    """A booted master served in-process, and the ids of the documents seeded into it."""

    def __init__(self, app: FastAPI, ids: dict[str, str]) -> None:
        self.app = app
        self.ids = ids

    def path_ids(self, path: str, generated: dict[str, Any]) -> dict[str, Any]:
        """An existing document of the right kind for each id parameter of ``path``, the
        seeded module's position for ``module_key``; other parameters as generated."""
        collection = path.split("/")[2]
        chosen = {**generated}
        for name in generated:
            if name == "doc_id":
                chosen[name] = self.ids[COLLECTION_IDS[collection]]
            elif name in self.ids:
                chosen[name] = self.ids[name]
            elif name == "module_key":
                chosen[name] = "Echo_1"
        return chosen


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Master]:
    """Schemathesis runs the app's lifespan in its own event loop thread, where every
    request is served too; the lifespan ends with the module."""
    workdir: Path = tmp_path_factory.mktemp("fuzz-master")
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'engine.db'}",
        drivers_path=workdir / "drivers",
        admin_token=TOKEN,
        public_url="http://testserver",
        boot_wait_s=0,
        request_timeout_s=2,
    )
    app = create_app(settings)
    try:
        with in_process(app) as client:
            wait_ready(client)
            ids = seed(client)
        yield Master(app, ids)
    finally:
        asgi.shutdown_lifespans()


# --- the tests ------------------------------------------------------------------------


@schema.parametrize()
def test_generated_requests_answer_as_documented(case: Case, master: Master) -> None:
    case.call_and_validate(app=master.app)


@operations_on_documents.parametrize()
def test_requests_about_existing_documents_answer_as_documented(case: Case, master: Master) -> None:
    case.path_parameters = master.path_ids(case.path, dict(case.path_parameters or {}))
    case.call_and_validate(app=master.app)


def undeclared(operation: dict[str, Any], response: requests.Response) -> str | None:
    """What about ``response`` the operation's documentation leaves out, if anything."""
    declared = operation["responses"].get(str(response.status_code))
    if declared is None:
        return f"status {response.status_code} is not among {sorted(operation['responses'])}"
    media_type = response.headers.get("content-type", "").split(";")[0]
    if response.content and media_type not in declared.get("content", {}):
        return f"{media_type} is not among {sorted(declared.get('content', {}))}"
    return None


@pytest.mark.parametrize("gap", [gap.param() for gap in EDGE_CASES])
def test_unparseable_and_invalid_input_is_documented(gap: Gap, master: Master) -> None:
    operation = DOCUMENT["paths"][gap.path][gap.method.lower()]
    names = [p["name"] for p in map(resolve, operation.get("parameters", [])) if p["in"] == "path"]
    url = gap.path.format(**master.path_ids(gap.path, dict.fromkeys(names, "x")))
    with in_process(master.app) as client:
        response = client.request(gap.method, f"{url}?{gap.query}", **gap.request)
    assert response.status_code < 500, response.text
    left_out = undeclared(operation, response)
    assert left_out is None, f"{left_out}: {response.text}"


# --- hostile input on every operation ---------------------------------------------------

#: A JSON body nested far beyond what any parser should recurse into.
DEEP_JSON = b'{"name": "deep", "settings": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"

HOSTILE_BODIES: dict[str, dict[str, Any]] = {
    "NUL in every string": {"json": "NUL"},
    "deeply nested": {"data": DEEP_JSON, "headers": {"Content-Type": "application/json"}},
    "not UTF-8": {
        "data": b'{"name": "\xc3\x28"}',
        "headers": {"Content-Type": "application/json"},
    },
    "over-long strings": {"json": "LONG"},
    "over the size limit": {"json": "HUGE"},
}
HOSTILE_URLS = {"NUL in the path": "%00", "not UTF-8 in the path": "%ff%fe"}
HOSTILE_QUERIES = {
    "NUL in the query": "limit=1%00&after=%00",
    "not UTF-8 in the query": "after=%c3%28",
}


def hostile_json(kind: str, operation: dict[str, Any]) -> dict[str, Any]:
    """A body with every property the operation takes set to the hostile value."""
    value = {"NUL": "a\u0000b", "LONG": "x" * 100_000, "HUGE": "x" * 2_000_000}[kind]
    key = f"generic/{value[:64]}.py"
    schema = resolve(operation["requestBody"]["content"]["application/json"]["schema"])
    schema = next(
        (resolve(s) for s in schema.get("anyOf", [schema]) if resolve(s).get("type") != "null"),
        schema,
    )
    body: dict[str, Any] = {}
    for name, spec in schema.get("properties", {}).items():
        kinds = {resolve(s).get("type") for s in spec.get("anyOf", [spec])}
        if "string" in kinds:
            body[name] = value
        elif "object" in kinds:
            body[name] = {key: value}
        elif "array" in kinds:
            body[name] = [value]
    return body or {key: value}


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: Any = DOCUMENT
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return dict(found)


def operations() -> list[Any]:
    found = []
    for path, methods in DOCUMENT["paths"].items():
        for method in methods:
            if method in ("get", "post", "patch", "put", "delete"):
                found.append(pytest.param(method.upper(), path, id=f"{method.upper()} {path}"))
    return found


def hostile_requests(
    path: str, url: str, operation: dict[str, Any]
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(label, url, request options) of each hostile variant of one operation."""
    for label, query in HOSTILE_QUERIES.items():
        yield label, f"{url}?{query}", {}
    if "{" in path:
        for label, segment in HOSTILE_URLS.items():
            hostile_url = url.rsplit("/", 1)[0] + "/" + segment if url.count("/") > 3 else url
            yield label, hostile_url, {}
    if "requestBody" in operation:
        for label, body in HOSTILE_BODIES.items():
            options = dict(body)
            if isinstance(options.get("json"), str):
                options["json"] = hostile_json(options["json"], operation)
            yield label, url, options


@pytest.mark.parametrize(("method", "path"), operations())
def test_hostile_input_is_a_documented_4xx(method: str, path: str, master: Master) -> None:
    operation = DOCUMENT["paths"][path][method.lower()]
    names = [p["name"] for p in map(resolve, operation.get("parameters", [])) if p["in"] == "path"]
    url = path.format(**master.path_ids(path, dict.fromkeys(names, "x"))) if names else path
    problems = []
    with in_process(master.app) as client:
        for label, target, options in hostile_requests(path, url, operation):
            response = client.request(method, target, **options)
            if response.status_code >= 500:
                problems.append(f"{label}: {response.status_code} {response.text[:200]}")
                continue
            left_out = undeclared(operation, response)
            if left_out is not None and response.status_code >= 400:
                problems.append(f"{label}: {left_out}: {response.text[:200]}")
    assert not problems, "\n".join(problems)
