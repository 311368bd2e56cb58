"""The routing decision as a table."""

from __future__ import annotations

import pytest

from app.services.routing import (
    Local,
    Placement,
    Proxy,
    Redirect,
    Refuse,
    decide,
    preference_from,
)

EDGE = "edge 'e1'"


@pytest.mark.parametrize(
    ("placement", "preference", "expected"),
    [
        (Placement("here"), "redirect", Local()),
        (Placement("here"), "proxy", Local()),
        (Placement("elsewhere", EDGE, "https://e1"), "redirect", Redirect("https://e1")),
        (Placement("elsewhere", EDGE, "https://e1"), "proxy", Proxy("https://e1", EDGE)),
        (Placement("elsewhere", EDGE, None, via_link=True), "redirect", Local()),
        (Placement("elsewhere", EDGE, None, via_link=True), "proxy", Local()),
    ],
)
def test_decisions(placement: Placement, preference: str, expected: object) -> None:
    assert decide(placement, preference) == expected  # type: ignore[arg-type]


def test_unreachable_controller_is_refused_with_the_reason_and_wait() -> None:
    placement = Placement(
        "elsewhere",
        EDGE,
        "https://e1",
        reachable=False,
        reason="edge disconnected",
        retry_after=7.5,
    )
    route = decide(placement, "redirect")
    assert isinstance(route, Refuse)
    assert EDGE in route.detail and "edge disconnected" in route.detail
    assert route.retry_after == 7.5


def test_no_url_and_no_link_is_refused() -> None:
    route = decide(Placement("elsewhere", EDGE, None), "proxy")
    assert isinstance(route, Refuse)
    assert "no public URL" in route.detail


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ("redirect", False)),
        ("routing=proxy", ("proxy", True)),
        ("respond-async, routing=redirect", ("redirect", True)),
        ("Routing=PROXY", ("proxy", True)),
        ("routing=teleport", ("redirect", False)),
        ("return=minimal; routing=proxy", ("proxy", True)),
    ],
)
def test_prefer_header(header: str | None, expected: tuple[str, bool]) -> None:
    assert preference_from(header, "redirect") == expected
