"""What a peer's error means to an HTTP client is the routers' decision."""

from __future__ import annotations

import pytest

from app.errors import NotFound
from app.link import LinkRequestError
from app.routers.problems import status_of


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("NotFound", 404),
        ("UnknownModule", 404),
        ("Conflict", 409),
        ("LinkClosed", 503),
        ("LinkTimeout", 504),
        ("bad_args", 502),
        ("internal", 502),
        ("SomethingNewer", 502),
    ],
)
def test_a_peer_error_keeps_its_domain_status_else_is_a_bad_gateway(code: str, status: int) -> None:
    assert status_of(LinkRequestError(code, "detail"))[0] == status


def test_an_engine_error_has_its_own_status() -> None:
    assert status_of(NotFound("no such module")) == (404, "Not Found")
