"""Keep tokens and secrets out of every log line, both roles.

Tokens travel in query strings (``?token=`` on client websockets, ``?access_token=``
on redirects followed across servers), and uvicorn's access and error logs and
httpx's request log print URLs whole. :class:`RedactSecrets` rewrites each record
before any handler formats it: query parameters that carry credentials, ``Bearer``
credentials, the engine's API tokens (``eng_…``) and the literal secrets this process
was configured with (its edge secret, the admin token) all become ``[redacted]``.

:func:`install_redaction` attaches it to the loggers that print URLs (a logger's own
filters survive uvicorn's logging configuration) and to every handler present, so
records propagated from any logger pass it too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"

#: Query parameters that carry a credential (RFC 6750 ``access_token``, the client
#: websocket's ``token`` / ``bearer_token``, API keys).
CREDENTIAL_PARAMS = ("token", "access_token", "bearer_token", "api-key", "api_key", "apikey")

_QUERY = re.compile(
    r"(?i)((?:[?&;]|%3F|%26)(?:" + "|".join(re.escape(p) for p in CREDENTIAL_PARAMS) + r")=)"
    r"[^&;#\s\"'<>]*"
)
_BEARER = re.compile(r"(?i)(\bbearer\s+)[^\s\"',;]+")
_API_TOKEN = re.compile(r"\beng_[A-Za-z0-9_\-]{16,}")

#: Loggers that print request URLs; their own filters see every record they emit.
URL_LOGGERS = (
    "uvicorn",
    "uvicorn.access",
    "uvicorn.error",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "websockets.client",
    "websockets.server",
)

_secrets: set[str] = set()


def redact(text: str) -> str:
    """``text`` with every credential replaced by ``[redacted]``."""
    text = _QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _API_TOKEN.sub(REDACTED, text)
    for secret in _secrets:
        text = text.replace(secret, REDACTED)
    return text


def add_secrets(values: Iterable[str | None]) -> None:
    """Literal values never to be logged (shorter than 8 characters: too common to mask)."""
    _secrets.update(value for value in values if value and len(value) >= 8)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message, arguments and traceback text; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {key: _redact_arg(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _redact_arg(arg: Any) -> Any:
    """An argument with its credentials redacted; numbers stay numbers for ``%d``."""
    if arg is None or isinstance(arg, bool | int | float):
        return arg
    text = str(arg)
    cleaned = redact(text)
    return arg if cleaned == text else cleaned


def install_redaction(secrets: Iterable[str | None] = ()) -> None:
    """Redact on the URL-printing loggers and on every handler present; idempotent."""
    add_secrets(secrets)
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in URL_LOGGERS)]
    for logger in loggers:
        _attach(logger)
        for handler in logger.handlers:
            _attach(handler)


def _attach(target: logging.Filterer) -> None:
    if not any(isinstance(existing, RedactSecrets) for existing in target.filters):
        target.addFilter(RedactSecrets())
