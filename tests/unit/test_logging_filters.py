"""Credentials never reach a log line: query tokens, bearer headers, API tokens, secrets."""

from __future__ import annotations

import logging
import sys

import httpx
import pytest
from uvicorn.logging import AccessFormatter

from app.logging_filters import REDACTED, RedactSecrets, add_secrets, install_redaction, redact

TOKEN = "eng_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v"


@pytest.mark.parametrize(
    "text",
    [
        f"GET /api/ws?token={TOKEN} HTTP/1.1",
        "GET /api/ws?x=1&token=plain-secret-value",
        "GET /api/systems/s/state?access_token=opaque.jwt.value&y=2",
        "WebSocket /control/websocket?bearer_token=abc123def456",
        "GET /api/ws?api-key=key-0123456789",
        "GET /api/ws?ACCESS_TOKEN=upper-case-key",
        "Authorization: Bearer opaque-bearer-value",
        f"some message naming {TOKEN} in passing",
    ],
)
def test_credentials_are_redacted(text: str) -> None:
    cleaned = redact(text)
    assert REDACTED in cleaned
    for secret in (TOKEN, "plain-secret-value", "opaque.jwt.value", "abc123def456"):
        assert secret not in cleaned
    for secret in ("key-0123456789", "upper-case-key", "opaque-bearer-value"):
        assert secret not in cleaned


def test_other_query_parameters_are_kept() -> None:
    assert redact("GET /api/systems?limit=5&after=sys-1&tokenize=no") == (
        "GET /api/systems?limit=5&after=sys-1&tokenize=no"
    )


def test_configured_secrets_are_redacted_anywhere() -> None:
    add_secrets(["an-edge-shared-secret-value", None, "short"])
    assert redact("handshake with an-edge-shared-secret-value failed") == (
        f"handshake with {REDACTED} failed"
    )
    assert redact("short stays") == "short stays"


def test_the_access_log_keeps_its_shape_without_the_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/api/ws?token={TOKEN}", "1.1", 101),
        None,
    )
    assert RedactSecrets().filter(record)
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(record)
    assert TOKEN not in line
    assert (
        line == f'127.0.0.1:5000 - "GET /api/ws?token={REDACTED} HTTP/1.1" 101 Switching Protocols'
    )


def test_httpx_urls_and_tracebacks_are_redacted() -> None:
    url = httpx.URL(f"http://edge:8000/api/systems/s/exec?access_token={TOKEN}")
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("POST", url), None
    )
    try:
        raise RuntimeError(f"failed calling {url}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    RedactSecrets().filter(record)
    text = logging.Formatter().format(record)
    assert TOKEN not in text
    assert "access_token=[redacted]" in text


def test_installing_twice_adds_one_filter(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()
    install_redaction()
    access = logging.getLogger("uvicorn.access")
    assert sum(isinstance(f, RedactSecrets) for f in access.filters) == 1
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        logging.getLogger("uvicorn.error").info(
            '"WebSocket %s" [accepted]', f"/api/ws?token={TOKEN}"
        )
    assert TOKEN not in caplog.text and REDACTED in caplog.text
