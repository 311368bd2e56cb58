"""What ``ctl`` prints: lines for people, errors in one line."""

from __future__ import annotations

import argparse
import io

import httpx
import pytest

from app.ctl import _problem, control_text, failover_text, run, status_rows, table, window_text

WINDOW = {"start": "2026-11-26T03:00:00+00:00", "end": "2026-11-26T04:00:00+00:00"}


def test_windows_are_shown_in_the_location_zone() -> None:
    assert window_text(WINDOW, "UTC") == "2026-11-26 03:00 to 04:00 UTC"
    assert window_text(WINDOW, "Australia/Sydney") == "2026-11-26 14:00 to 15:00 Australia/Sydney"
    late = {"start": "2026-11-26T23:30:00+00:00", "end": "2026-11-27T00:30:00+00:00"}
    assert window_text(late, "UTC") == "2026-11-26 23:30 to 2026-11-27 00:30 UTC"
    assert window_text(None, "UTC") == "manual"
    assert window_text(WINDOW, "Not/AZone") == "2026-11-26 03:00 to 04:00 UTC"


def test_failover_says_whether_one_is_pending() -> None:
    assert failover_text({"retry_after": 7.4}) == "pending (7 s)"
    assert failover_text({"retry_after": None, "failover_active": True}) == "active"
    assert failover_text({"retry_after": None}) == "no"
    assert failover_text({"pending": {"decision": "takeover"}}) == (
        "waiting for the store (takeover)"
    )


def test_status_is_one_aligned_line_per_location() -> None:
    snapshot = {
        "locations": [
            {
                "id": "edge-1",
                "name": "Sydney office",
                "timezone": "UTC",
                "control": {
                    "controller": "master",
                    "online": False,
                    "epoch": 2,
                    "failover_active": True,
                    "retry_after": None,
                    "next_restore_window": WINDOW,
                },
            },
            {"id": "edge-22", "name": "New", "control": None},
        ]
    }
    lines = table(status_rows(snapshot)).splitlines()
    assert lines == [
        "ID       NAME           CONTROLLER  ONLINE  EPOCH  FAILOVER  NEXT WINDOW",
        "edge-1   Sydney office  master      no      2      active    "
        "2026-11-26 03:00 to 04:00 UTC",
        "edge-22  New            none        no      0      no        manual",
    ]


def test_a_control_answer_is_one_line() -> None:
    control = {"controller": "edge", "epoch": 3, "online": True, "reason": "handed back"}
    assert control_text("edge-1", control) == (
        "edge-1: controller edge, epoch 3, edge online (handed back)"
    )


def test_problems_become_one_line() -> None:
    problem = httpx.Response(
        409, json={"title": "Conflict", "detail": "the edge is\nnot connected"}
    )
    assert _problem(problem) == "409 Conflict: the edge is not connected"
    assert _problem(httpx.Response(502, text="<html>bad gateway</html>")) == "502 Bad Gateway"


def test_no_token_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGINE_TOKEN", raising=False)
    err = io.StringIO()
    args = argparse.Namespace(ctl_command="status")
    assert run(args, err=err) == 2
    assert err.getvalue() == "error: no token: set ENGINE_TOKEN or pass --token\n"
