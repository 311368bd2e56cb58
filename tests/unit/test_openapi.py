"""The committed OpenAPI document matches the app, with stable operation ids."""

from __future__ import annotations

import json

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
