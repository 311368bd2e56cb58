"""High availability between real processes (DESIGN §5).

Each edge location drives one simulated device through a ``TcpLine`` module. The
device records every connection and a :class:`DeviceWatch` names the server that
opened it, so each scenario checks who controlled the device, when, and that outside
a partition it never had two controllers at once. Run with ``-s`` to see the timings.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from app.control.windows import RestoreWindow
from tests.integration.rooms import (
    TIMEOUT_S,
    Rooms,
    decisions,
    last_reply,
    offline,
    online,
    readiness,
    report,
    send,
)
from tests.integration.sites import PING_S, RETRY_S, Site
from tests.support.proxy import PausableProxy
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


async def test_a_killed_edge_fails_over_only_when_failover_is_set(site: Site, rooms: Rooms) -> None:
    on = await rooms.add("failover-on", timeout=TIMEOUT_S)
    off = await rooms.add("failover-off", timeout=TIMEOUT_S, failover=False)
    for room in (on, off):
        await room.watch.wait_held_by(room.name, timeout=10)
    assert (await send(site, on, "before the failure")).json() == {"result": "before the failure"}

    async def mirrored() -> bool:
        return bool(await last_reply(site, on) == "before the failure")

    await wait_until(mirrored, message="the edge's status to reach the master's mirror")

    killed = time.monotonic()
    await on.edge.process.kill()
    await off.edge.process.kill()

    taken = await on.watch.wait_held_by("master", timeout=TIMEOUT_S + 1)
    report("SIGKILL to the master's device connection (timeout 1.5 s)", taken - killed)
    assert await last_reply(site, on) == "before the failure", "the edge's last status carries on"
    assert await decisions(site, on) == ["connected", "disconnected", "failover"]
    assert await site.probe(site.master, on.edge) == 200

    await off.watch.keeps([], seconds=killed + TIMEOUT_S + 1 - time.monotonic())
    control = await site.control(off.edge)
    assert (control["controller"], control["online"]) == ("edge", False)
    assert "failover is off" in control["reason"], control["reason"]
    assert await site.probe(site.master, off.edge) == 503
    refused = await send(site, off, "anyone?")
    assert refused.status_code == 503, refused.text
    assert control["reason"] in refused.json()["detail"]

    # Turning failover on applies at once: the timeout has long run out, so the master acts.
    await site.patch_edge(off.edge, {"failover": True})
    await off.watch.wait_held_by("master", timeout=2)
    assert await decisions(site, off) == ["connected", "disconnected", "failover"]

    assert on.watch.owners() == ["failover-on", "master"]
    assert off.watch.owners() == ["failover-off", "master"]
    assert on.device.max_concurrent == off.device.max_concurrent == 1


async def test_an_edge_back_before_its_timeout_keeps_control(site: Site, rooms: Rooms) -> None:
    timeout = 4.0
    room = await rooms.add("quick", timeout=timeout)
    await room.watch.wait_held_by("quick", timeout=10)
    epoch = (await site.control(room.edge))["epoch"]

    killed = time.monotonic()
    await room.edge.process.kill()
    await room.watch.wait_released(timeout=1)
    await room.edge.process.start()
    back = await room.watch.wait_held_by("quick", timeout=timeout)
    report("edge SIGKILL and restart to its device connection again", back - killed)
    await room.watch.keeps(["quick"], seconds=killed + timeout + 1 - time.monotonic())

    control = await site.control(room.edge)
    assert (control["controller"], control["epoch"], control["online"]) == ("edge", epoch, True)
    assert not control["failover_active"]
    assert await site.probe(site.master, room.edge) == 503
    assert await site.probe(room.edge.process, room.edge) == 200
    assert await decisions(site, room) == ["connected", "disconnected", "connected"]
    assert room.watch.owners() == ["quick", "quick"]
    assert room.device.max_concurrent == 1


async def test_after_a_failover_the_master_keeps_control_until_restored(
    site: Site, rooms: Rooms
) -> None:
    room = await rooms.add("restored", timeout=60)
    await room.watch.wait_held_by("restored", timeout=10)

    killed = time.monotonic()
    await room.edge.process.kill()
    await wait_until(lambda: offline(site, room), timeout=2, message="the master to see it go")
    # A shorter timeout applies at once, counted from when the edge went.
    await site.patch_edge(room.edge, {"timeout": TIMEOUT_S})
    taken = await room.watch.wait_held_by("master", timeout=TIMEOUT_S + 1)
    report("SIGKILL to the master's device connection (timeout cut to 1.5 s)", taken - killed)
    assert (await send(site, room, "from the master")).status_code == 200

    await room.edge.process.start()
    await wait_until(lambda: online(site, room), timeout=10, message="the edge to reconnect")
    await room.watch.keeps(["master"], seconds=1.0)
    control = await site.control(room.edge)
    assert (control["controller"], control["failover_active"]) == ("master", True)
    assert "already controls" in control["reason"], control["reason"]
    assert await site.probe(site.master, room.edge) == 200
    assert await site.probe(room.edge.process, room.edge) == 503

    restored = await site.post(f"/api/edges/{room.edge.id}/restore", {})
    assert restored["controller"] == "edge"
    await room.watch.wait_held_by("restored", timeout=5)

    first, by_master, by_edge = room.watch.connections
    assert (first.owner, by_master.owner, by_edge.owner) == ("restored", "master", "restored")
    assert by_master.closed is not None and by_master.closed <= by_edge.opened
    report("master's close to the edge's open on restore", by_edge.opened - by_master.closed)
    assert await last_reply(site, room, at_edge=True) == "from the master"
    assert await decisions(site, room) == [
        "connected",
        "disconnected",
        "config",
        "failover",
        "connected",
        "restore",
    ]
    assert (await site.events(room.edge))[-1]["by"] is not None
    assert room.device.max_concurrent == 1


async def test_restore_windows_hand_control_back_to_the_edge(site: Site, rooms: Rooms) -> None:
    window_s = 20.0
    room = await rooms.add(
        "windowed", timeout=TIMEOUT_S, window_start="* * * * *", window_length=window_s
    )
    await room.watch.wait_held_by("windowed", timeout=10)
    assert (await send(site, room, "before maintenance")).status_code == 200

    # Planned maintenance: the master takes a connected edge's devices, and their status.
    await site.post(f"/api/edges/{room.edge.id}/takeover", {})
    await room.watch.wait_held_by("master", timeout=5)
    assert await last_reply(site, room) == "before maintenance"
    assert (await send(site, room, "during maintenance")).status_code == 200

    # The next window opens at the next minute and hands control back.
    opens = RestoreWindow("* * * * *", window_s).next_start(datetime.now(UTC))
    assert opens is not None
    wait_s = (opens - datetime.now(UTC)).total_seconds()
    opened = time.monotonic() + wait_s
    back = await room.watch.wait_held_by("windowed", timeout=wait_s + 3)
    report(f"window opening (after a {wait_s:.1f} s wait) to the edge's connection", back - opened)
    assert await last_reply(site, room, at_edge=True) == "during maintenance"

    # Still inside the window: an edge that reconnects wins even from a failover.
    await room.edge.process.kill()
    await room.watch.wait_held_by("master", timeout=TIMEOUT_S + 1)
    assert (await send(site, room, "during the failover")).status_code == 200
    await room.edge.process.start()
    await room.watch.wait_held_by("windowed", timeout=10)
    assert datetime.now(UTC) < opens + timedelta(seconds=window_s), "the window closed too early"
    assert await last_reply(site, room, at_edge=True) == "during the failover"

    kinds = await decisions(site, room)
    assert kinds == ["connected", "takeover", "restore", "disconnected", "failover", "connected"]
    events = await site.events(room.edge)
    assert "restore window opened" in events[2]["reason"]
    assert "inside its restore window" in events[5]["reason"]
    owners = room.watch.owners()
    assert owners == ["windowed", "master", "windowed", "master", "windowed"], owners
    assert room.device.max_concurrent == 1


async def test_a_master_restart_leaves_running_edges_alone_and_resumes_held_ones(
    site: Site, rooms: Rooms
) -> None:
    steady = [await rooms.add(f"steady-{n}", timeout=TIMEOUT_S) for n in (1, 2)]
    for room in steady:
        await room.watch.wait_held_by(room.name, timeout=10)

    # The edges run their devices: the restarted master waits only until both connected.
    boot_wait_s = 5.0
    site.master.settings["ENGINE_BOOT_WAIT_S"] = str(boot_wait_s)
    await site.master.kill()
    started = time.monotonic()
    await site.master.start()
    await readiness(site)
    ready_s = time.monotonic() - started
    report(f"master restart to ready, both edges connected (boot wait {boot_wait_s:g} s)", ready_s)
    assert ready_s < boot_wait_s
    summary = (await site.http.get("/api/ready")).json()
    assert summary["edges_connected"] == 2
    for room in steady:
        await room.watch.keeps([room.name], seconds=TIMEOUT_S / 2)
        control = await site.control(room.edge)
        assert (control["controller"], control["online"]) == ("edge", True)

    # The master holds an edge's devices when it dies: back up, it takes them again at boot.
    held = steady[0]
    await held.edge.process.kill()
    await held.watch.wait_held_by("master", timeout=TIMEOUT_S + 1)
    site.master.settings["ENGINE_BOOT_WAIT_S"] = "1"
    await site.master.kill()
    await held.watch.wait_released(timeout=1)
    await site.master.start()
    statuses = await readiness(site)
    assert statuses[0] == 503, "the API answers 503 while the master waits for its edges"
    assert (await decisions(site, held))[-2:] == ["failover", "resume"], "decided during boot"
    await held.watch.wait_held_by("master", timeout=1)
    assert held.watch.owners() == ["steady-1", "master", "master"]
    assert steady[1].watch.owners() == ["steady-2"]
    for room in steady:
        assert room.device.max_concurrent == 1


async def test_edges_run_their_devices_while_the_master_is_down(site: Site, rooms: Rooms) -> None:
    held = await rooms.add("held", timeout=TIMEOUT_S)
    cold = await rooms.add("cold", failover=False)
    for room in (held, cold):
        await room.watch.wait_held_by(room.name, timeout=10)
    await site.post(f"/api/edges/{held.edge.id}/takeover", {})
    await held.watch.wait_held_by("master", timeout=5)
    await cold.edge.process.stop()
    await cold.watch.wait_released(timeout=1)
    limit = 2 * RETRY_S + 1

    # A connected edge whose devices the master held: it takes them when the master dies.
    killed = time.monotonic()
    await site.master.kill()
    taken = await held.watch.wait_held_by("held", timeout=limit)
    report("master SIGKILL to the connected edge's device connection", taken - killed)

    # An edge that boots while the master is down runs from its replica.
    started = time.monotonic()
    await cold.edge.process.start()
    await cold.edge.process.wait_ready()
    ready = time.monotonic()
    taken = await cold.watch.wait_held_by("cold", timeout=limit)
    report("edge start (master down) to ready", ready - started)
    report("edge ready (master down) to its device connection", taken - ready)

    for room in (held, cold):
        assert await site.probe(room.edge.process, room.edge) == 200
        assert room.device.max_concurrent == 1
    assert held.watch.owners() == ["held", "master", "held"]
    assert cold.watch.owners() == ["cold", "cold"]


async def test_a_partition_heals_to_one_controller_within_one_negotiation(
    site: Site, rooms: Rooms
) -> None:
    async with PausableProxy(site.master.port) as proxy:
        room = await rooms.add(
            "partitioned", timeout=TIMEOUT_S, master_url=f"https://127.0.0.1:{proxy.port}"
        )
        await room.watch.wait_held_by("partitioned", timeout=10)

        proxy.pause()
        paused = time.monotonic()
        await wait_until(
            lambda: sorted(map(str, room.watch.open_owners())) == ["master", "partitioned"],
            timeout=4 * PING_S + TIMEOUT_S + 2,
            message="the master to fail over while the edge still runs",
        )
        report("partition to the master's takeover (both control now)", time.monotonic() - paused)
        assert (await site.control(room.edge))["failover_active"]

        proxy.resume()
        healed = time.monotonic()
        alone = await room.watch.wait_held_by("partitioned", timeout=RETRY_S + 2)
        report("heal to one controller", alone - healed)
        report("both connected to the device", room.watch.overlap_s())

        control = await site.control(room.edge)
        assert (control["controller"], control["online"]) == ("edge", True)
        assert "already runs its devices" in control["reason"]
        assert await decisions(site, room) == ["connected", "disconnected", "failover", "connected"]
        assert room.watch.owners() == ["partitioned", "master"]


async def test_a_location_whose_edge_never_connects_is_taken_over_after_its_timeout(
    site: Site, rooms: Rooms
) -> None:
    timeout = 2.0
    created = time.monotonic()
    room = await rooms.add("never", timeout=timeout, start=False)

    taken = await room.watch.wait_held_by("master", timeout=3 - (time.monotonic() - created))
    report("a new location's creation to the master on its device (timeout 2 s)", taken - created)
    control = await site.control(room.edge)
    assert (control["controller"], control["failover_active"]) == ("master", True)
    assert taken - created <= 3
    events = (await site.http.get(f"/api/edges/{room.edge.id}/events")).json()
    assert [event["kind"] for event in reversed(events)] == ["created", "failover"]
    assert "its edge has not connected yet" in events[-1]["reason"]
    await room.watch.keeps(["master"], seconds=0.5)
    assert room.watch.owners() == ["master"]
    assert room.device.max_concurrent == 1


async def test_a_location_nobody_runs_says_so_and_how_to_start_it(site: Site, rooms: Rooms) -> None:
    room = await rooms.add("idle", timeout=1, failover=False, start=False)

    async def said() -> bool:
        return "nobody runs its devices" in (await site.control(room.edge))["reason"]

    await wait_until(said, timeout=5, message="the reason to say nobody runs it")
    status = (await site.http.get("/api/status")).json()
    [location] = [loc for loc in status["locations"] if loc["id"] == room.edge.id]
    assert location["control"]["controller"] == "none"
    refused = await send(site, room, "anyone?")
    assert refused.status_code == 503
    assert "nobody runs its devices" in refused.json()["detail"]
    await room.watch.keeps([], seconds=1.5)
