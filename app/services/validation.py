"""Turn pydantic validation failures into errors that name the field and the reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from app.errors import InvalidField

ModelT = TypeVar("ModelT", bound=BaseModel)


def field_path(loc: Sequence[int | str]) -> str:
    """``("body", "modules", 2)`` → ``modules[2]``; the transport prefix is dropped."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pydantic's error list as ``[{field, reason}]`` with readable reasons."""
    described = []
    for error in errors:
        reason = str(error.get("msg", "invalid value"))
        reason = reason.removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            reason = "unknown field"
        described.append({"field": field_path(error.get("loc", ())), "reason": reason})
    return described


def invalid(errors: Sequence[Mapping[str, Any]]) -> InvalidField:
    """One 422 error naming the first bad field and listing all of them."""
    described = describe_errors(errors) or [{"field": "body", "reason": "invalid"}]
    first = described[0]
    error = InvalidField(first["field"], first["reason"])
    if len(described) > 1:
        error.detail = "; ".join(f"{e['field']}: {e['reason']}" for e in described)
    error.extensions["errors"] = described
    return error


def parse(model: type[ModelT], data: object) -> ModelT:
    """Validate ``data`` against ``model`` or raise a 422 naming the field."""
    if not isinstance(data, Mapping):
        raise InvalidField("body", "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc.errors(include_url=False)) from None
