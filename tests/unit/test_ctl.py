"""What ``ctl`` prints: lines for people, errors in one line."""

from __future__ import annotations

import argparse
import io
import socket
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.ctl import (
    Client,
    CtlError,
    UsageError,
    _problem,
    base_url,
    control_text,
    failover_text,
    rotation_text,
    run,
    status_rows,
    status_text,
    table,
    window_text,
)

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


# --- the server's URL, waiting, confirming ---------------------------------------------


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("https://proxy.example/engine/", "https://proxy.example/engine"),
        (" engine.example ", "http://engine.example"),
    ],
)
def test_a_url_may_leave_out_its_scheme_and_keeps_its_path(given: str, url: str) -> None:
    assert base_url(given) == url


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("ftp://x", "must start with http:// or https://"),
        ("http://", "names no host"),
        ("http://x:port", "has a bad port"),
        ("http://x/?a=1", "must not carry a query"),
    ],
)
def test_a_bad_url_is_a_usage_error(given: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        base_url(given)


def test_calls_keep_the_path_the_server_sits_behind() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"locations": []})

    client = Client(
        "https://proxy.example/engine", "t", timeout=1, transport=httpx.MockTransport(answer)
    )
    client.call("GET", "/api/status")
    assert seen == ["https://proxy.example/engine/api/status"]


def test_a_server_that_does_not_answer_is_reported_after_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = Client(url, "t", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(CtlError) as failed:
            client.call("GET", "/api/status")
        waited = time.monotonic() - started
    assert str(failed.value) == (
        f"no answer from {url}/api/status within 0.3 s: the server is hung, frozen or "
        "overloaded (--timeout S waits longer)"
    )
    assert waited < 2


def ctl_args(command: str, **values: object) -> argparse.Namespace:
    return argparse.Namespace(
        ctl_command=command, url="http://127.0.0.1:9", token="t", timeout=1.0, **values
    )


def test_a_change_without_a_terminal_needs_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # a pipe, not a terminal
    err = io.StringIO()
    assert run(ctl_args("takeover", edge="edge-1", yes=False), err=err) == 2
    assert err.getvalue() == (
        "error: takeover edge-1 needs a confirmation: pass --yes (there is no terminal to ask)\n"
    )


def test_a_change_not_confirmed_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        return httpx.Response(200, json={"controller": "edge", "epoch": 1, "online": True})

    real = Client.__init__

    def mocked(self: Client, url: str, token: str, *, timeout: float, **_: object) -> None:
        real(self, url, token, timeout=timeout, transport=httpx.MockTransport(answer))

    monkeypatch.setattr(Client, "__init__", mocked)
    questions: list[str] = []

    def no(question: str) -> bool:
        questions.append(question)
        return False

    err = io.StringIO()
    assert run(ctl_args("restore", edge="edge-1", yes=False), err=err, ask=no) == 1
    assert err.getvalue() == "error: not confirmed: nothing changed\n"
    assert calls == [("GET", "/api/edges/edge-1/control")]
    [question] = questions
    assert question.startswith("now: edge-1: controller edge, epoch 1, edge online\n")
    assert "Hand edge-1 back to its edge?" in question

    out = io.StringIO()
    assert run(ctl_args("takeover", edge="edge-1", yes=True), out=out) == 0
    assert calls[-1] == ("POST", "/api/edges/edge-1/takeover")


# --- what status says is wrong -------------------------------------------------------------

NOW = datetime(2030, 1, 1, 0, 1, tzinfo=UTC)


def test_an_edge_says_its_master_is_unreachable_above_the_table() -> None:
    link: dict[str, Any] = {
        "state": "unreachable",
        "master_alive": False,
        "since": "2030-01-01T00:00:25+00:00",
        "error": "timed out",
        "master_url": "http://master:8000",
    }
    snapshot = {"node": "edge:edge-1", "master_link": link, "locations": []}
    first = status_text(snapshot, NOW).splitlines()[0]
    assert first == (
        "edge:edge-1: MASTER UNREACHABLE to the master http://master:8000 since 00:00:25 UTC "
        "(35 s): timed out; this edge runs its location on its own (controller, epoch and "
        "failover below are the master's last word)"
    )
    only_error = {
        **snapshot,
        "master_link": {
            **link,
            "since": None,
            "error_at": "2030-01-01T00:00:58+00:00",
        },
    }
    assert (
        status_text(only_error, NOW)
        .splitlines()[0]
        .startswith(
            "edge:edge-1: MASTER UNREACHABLE to the master http://master:8000: timed out "
            "(at 00:00:58 UTC, 2 s ago); this edge"
        )
    )
    linked = {**snapshot, "master_link": {"state": "up", "master_url": "http://master:8000"}}
    assert status_text(linked, NOW).splitlines()[0] == (
        "edge:edge-1: linked to the master http://master:8000"
    )


def test_status_says_which_locations_nobody_runs_and_a_store_refusing_writes() -> None:
    snapshot = {
        "node": "master",
        "health": {"store": {"writable": False, "error": "disk full", "since": None}},
        "locations": [{"id": "edge-9", "name": "New", "control": {"controller": "none"}}],
    }
    lines = status_text(snapshot, NOW).splitlines()
    assert lines[0] == (
        "master: its store REFUSES WRITES: disk full; decisions are carried out and recorded "
        "once it takes writes again"
    )
    assert lines[-1] == (
        "edge-9: NOBODY RUNS ITS DEVICES: start its edge (ENGINE_EDGE_ID=edge-9), "
        "or `engine ctl takeover edge-9` runs it on the master"
    )


def test_a_rotation_lists_every_valid_secret_and_its_end() -> None:
    rotated = {
        "secret": "NEW",
        "valid": [
            {"fingerprint": "aaaaaaaaaaaa", "current": True, "until": None, "in_use": False},
            {
                "fingerprint": "bbbbbbbbbbbb",
                "current": False,
                "until": "2030-01-02T00:00:00+00:00",
                "in_use": True,
            },
        ],
    }
    lines = rotation_text("edge-1", rotated, None).splitlines()
    assert lines[0].endswith("ENGINE_EDGE_SECRET): NEW")
    assert lines[2] == "  aaaaaaaaaaaa  the new one, valid until the next rotation"
    assert lines[3] == (
        "  bbbbbbbbbbbb  until 2030-01-02T00:00:00+00:00 at the latest, or until the edge "
        "uses a newer one (the edge's live link uses it)"
    )
