"""Edge modules as the master sees them: the status mirror, debug relay and proxies."""

from __future__ import annotations

from typing import Any, cast

import pytest

from app.link import LinkClosed, LinkConnection
from app.master.remote import DebugRelay, RemoteModule, StatusMirror
from tests.support.wait import wait_until


class RecordingLink:
    """Answers every request with what it was asked, and remembers it."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], float | None]] = []

    async def request(self, op: str, args: dict[str, Any], *, timeout: float | None = None) -> Any:
        self.requests.append((op, args, timeout))
        return {"op": op, **args}


def as_link(link: RecordingLink) -> LinkConnection:
    """Remote modules only call ``request`` on the link, though they are typed with the
    whole LinkConnection (app/master/remote.py)."""
    return cast(LinkConnection, link)


def test_the_mirror_notifies_only_what_changed() -> None:
    mirror = StatusMirror()
    heard: list[tuple[str, Any]] = []
    mirror.subscribe("m", lambda name, value: heard.append((name, value)))
    mirror.replace("m", {"power": True, "input": 1}, {"send": {"params": []}})
    mirror.replace("m", {"power": True, "input": 2}, {})
    mirror.update("m", "power", False)
    assert heard == [("power", True), ("input", 1), ("input", 2), ("power", False)]
    assert mirror.state("m") == {"power": False, "input": 2}
    assert mirror.snapshot(["m", "other"]) == {"m": {"power": False, "input": 2}}


def test_a_failing_subscriber_does_not_silence_the_others() -> None:
    mirror = StatusMirror()
    heard: list[Any] = []

    def broken(name: str, value: Any) -> None:
        raise RuntimeError("listener bug")

    mirror.subscribe("m", broken)
    unsubscribe = mirror.subscribe("m", lambda name, value: heard.append(value))
    mirror.update("m", "power", True)
    unsubscribe()
    mirror.update("m", "power", False)
    assert heard == [True]


async def test_the_edge_is_asked_for_debug_lines_while_someone_listens() -> None:
    relay, link = DebugRelay(), RecordingLink()
    lines: list[tuple[str, str]] = []
    first = relay.subscribe(
        "m", lambda: as_link(link), lambda level, msg: lines.append((level, msg))
    )
    second = relay.subscribe("m", lambda: as_link(link), lambda level, msg: None)
    relay.deliver("m", "error", "boom")
    first()
    first()
    second()
    await wait_until(lambda: len(link.requests) == 2, timeout=2)
    assert [op for op, _, _ in link.requests] == ["debug.subscribe", "debug.unsubscribe"]
    assert lines == [("error", "boom")]


async def test_a_remote_call_goes_over_the_link_with_room_for_the_edges_timeout() -> None:
    link = RecordingLink()
    remote = RemoteModule(
        "m",
        "Display",
        "edge-1",
        link=lambda: as_link(link),
        mirror=StatusMirror(),
        debug=DebugRelay(),
        default_timeout=5,
    )
    result = await remote.exec("send", ["hi"], {"raw": True}, timeout=2)
    assert result["op"] == "exec"
    _, args, timeout = link.requests[0]
    assert args == {
        "module_id": "m",
        "method": "send",
        "args": ["hi"],
        "kwargs": {"raw": True},
        "timeout": 2,
    }
    assert timeout is not None and timeout > 2


async def test_a_remote_call_without_a_link_is_a_clear_503() -> None:
    remote = RemoteModule(
        "m",
        "Display",
        "edge-1",
        link=lambda: None,
        mirror=StatusMirror(),
        debug=DebugRelay(),
        default_timeout=5,
    )
    with pytest.raises(LinkClosed) as raised:
        await remote.exec("send")
    assert raised.value.status == 503
    assert "edge-1" in raised.value.detail
