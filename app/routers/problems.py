"""Every error as ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import EngineError
from app.link import ErrorCode, LinkClosed, LinkRequestError, LinkTimeout
from app.link.codes import DOMAIN_CODES
from app.services.validation import invalid
from app.store.base import StoreUnavailable

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body.update(extensions)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


#: What a peer's error code means to an HTTP client: a domain error keeps its status
#: (a 404 on the edge is a 404 on the master); any other code is the peer failing (502).
LINK_ERROR_STATUS: dict[str, tuple[int, str]] = {
    **{code: (error.status, error.title) for error, code in DOMAIN_CODES.items()},
    ErrorCode.LINK_CLOSED: (LinkClosed.status, LinkClosed.title),
    ErrorCode.LINK_TIMEOUT: (LinkTimeout.status, LinkTimeout.title),
}
PEER_FAILED = (502, "Bad Gateway")


def status_of(error: EngineError) -> tuple[int, str]:
    """The HTTP status and title of an engine error, a peer's error by its wire code."""
    if isinstance(error, LinkRequestError):
        return LINK_ERROR_STATUS.get(error.code, PEER_FAILED)
    return error.status, error.title


def error_response(error: EngineError) -> JSONResponse:
    status, title = status_of(error)
    return problem(status, title, error.detail, headers=error.headers, **error.extensions)


async def _engine_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EngineError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(invalid(exc.errors()))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = HTTPStatus(exc.status_code).phrase
    return problem(exc.status_code, title, str(exc.detail), headers=dict(exc.headers or {}))


async def _store_unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.error("store unavailable: %s", exc)
    return problem(503, "Service Unavailable", f"the database cannot be written: {exc}")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    return unexpected_error_response(exc)


def unexpected_error_response(exc: Exception) -> JSONResponse:
    """A 500 that says nothing of the error but that it was logged (it is, here)."""
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "Internal Server Error", "an unexpected error occurred; see the log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(EngineError, _engine_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)
