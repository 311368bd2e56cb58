"""Conditional requests: ``ETag`` / ``If-None-Match`` for reads, ``If-Match`` for writes."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

#: Front ends may keep configuration reads, but must revalidate them (cheap: 304).
CONFIG_CACHE = "private, no-cache"


def version_etag(version: str) -> str:
    return f'"{version}"'


def content_etag(body: bytes) -> str:
    return f'W/"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'


def _tags(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]


def matches_none(request: Request, etag: str) -> bool:
    """True when the client's ``If-None-Match`` already has this representation."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    return header.strip() == "*" or etag.removeprefix("W/") in _tags(header)


def if_match_version(request: Request) -> str | None:
    """The version an ``If-Match`` header requires (``*`` passes through), if any."""
    header = request.headers.get("if-match")
    if not header:
        return None
    tags = _tags(header)
    if not tags:
        return None
    return tags[0] if tags[0] == "*" else tags[0].strip('"')


def cached_json(
    request: Request,
    content: Any,
    *,
    etag: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    cache_control: str = CONFIG_CACHE,
) -> Response:
    """A JSON response with an ``ETag`` that answers ``If-None-Match`` with 304."""
    response = JSONResponse(content, status_code=status_code, headers=headers)
    tag = etag or content_etag(bytes(response.body))
    extra = {"ETag": tag, "Cache-Control": cache_control}
    if status_code == 200 and matches_none(request, tag):
        return Response(status_code=304, headers={**(headers or {}), **extra})
    response.headers.update(extra)
    return response
