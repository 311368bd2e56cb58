"""TLS material for tests: a certificate that has already expired."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta

import trustme


def expired_server() -> tuple[trustme.CA, ssl.SSLContext]:
    """A CA and a server context whose certificate (for 127.0.0.1) expired a second ago."""
    authority = trustme.CA()
    now = datetime.now(UTC)
    issued = authority.issue_cert(
        "127.0.0.1", not_before=now - timedelta(days=2), not_after=now - timedelta(seconds=1)
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issued.configure_cert(server)
    return authority, server
