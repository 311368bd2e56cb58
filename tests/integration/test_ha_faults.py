"""High availability under everyday faults, between real processes (DESIGN §5).

The master's database refusing writes, a link broken while both APIs answer, a secret
rotation, a flood of wrong hellos, a frozen edge. Each scenario watches the device
(who holds its connection) and samples the controller probe of both servers every
100 ms: the device never has two controllers where the issue promises one, and
``/controller`` answers 200 on at most one server. Run with ``-s`` to see the timings.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from app.link.auth import witness_question_proof
from app.urls import LINK_PATH, websocket_url
from tests.integration.rooms import (
    TIMEOUT_S,
    ControllerSampler,
    Room,
    Rooms,
    decisions,
    online,
    report,
)
from tests.integration.sites import PING_S, RETRY_S, Site
from tests.support.proxy import PausableProxy
from tests.support.unwritable import database_files, immutable
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


async def ready_body(site: Site, server: Any) -> dict[str, Any]:
    response = await site.get(server, "/api/ready")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def metric(site: Site, name: str) -> float:
    text = (await site.get(site.master, "/metrics")).text
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


def assert_one_truth(sampler: ControllerSampler) -> None:
    assert sampler.samples, "the sampler took no samples"
    assert not sampler.doubled(), f"/controller 200 on both servers: {sampler.doubled()[:5]}"
    assert not sampler.false_claims(), f"the API named an idle master: {sampler.false_claims()[:5]}"


# --- the master's database refuses writes ---------------------------------------------


@pytest.mark.parametrize("refused", ["before the kill", "after the kill"])
async def test_a_failover_is_carried_out_while_the_store_refuses_it_and_recorded_after(
    site: Site, rooms: Rooms, refused: str
) -> None:
    room = await rooms.add("stored", timeout=TIMEOUT_S)
    await room.watch.wait_held_by("stored", timeout=10)
    database = site.master.workdir / "engine.db"

    async with ControllerSampler(site, room.edge) as sampler:
        if refused == "after the kill":
            await room.edge.process.kill()
            await wait_until(
                lambda: _offline_recorded(site, room), timeout=5, message="the disconnect recorded"
            )
        with immutable(database_files(database)):
            if refused == "before the kill":
                await room.edge.process.kill()
            killed = time.monotonic()
            taken = await room.watch.wait_held_by("master", timeout=TIMEOUT_S + 2)
            report(
                f"store refusing writes {refused}: kill to the master's takeover", taken - killed
            )
            control = await site.control(room.edge)
            assert control["controller"] == "master", control
            assert control["pending"] is not None, control
            assert "store refuses writes" in control["pending"]["reason"]
            assert "master controls" in control["pending"]["decision"]
            health = await ready_body(site, site.master)
            assert health["store"]["writable"] is False, health
            assert health["store"]["error"], health
            assert await metric(site, "engine_store_writable") == 0
        thawed = time.monotonic()

        async def recorded() -> bool:
            return (await site.control(room.edge))["pending"] is None

        await wait_until(recorded, timeout=2, message="the failover to be recorded")
        report("store writable again to the failover recorded", time.monotonic() - thawed)
        assert (await ready_body(site, site.master))["store"]["writable"] is True
        assert await metric(site, "engine_store_writable") == 1
        assert (await decisions(site, room))[-1] == "failover"

        await room.edge.process.start()
        await wait_until(lambda: online(site, room), timeout=10, message="the edge back")
        await room.watch.keeps(["master"], seconds=0.5)

    assert_one_truth(sampler)
    assert room.watch.owners() == ["stored", "master"]
    assert room.device.max_concurrent == 1


async def _offline_recorded(site: Site, room: Room) -> bool:
    return (await decisions(site, room))[-1] == "disconnected"


async def test_takeover_and_restore_go_through_while_the_store_refuses_them(
    site: Site, rooms: Rooms
) -> None:
    room = await rooms.add("operated", timeout=TIMEOUT_S)
    await room.watch.wait_held_by("operated", timeout=10)
    epoch = (await site.control(room.edge))["epoch"]
    database = site.master.workdir / "engine.db"

    async with ControllerSampler(site, room.edge) as sampler:
        with immutable(database_files(database)):
            taken = await site.post(f"/api/edges/{room.edge.id}/takeover", {})
            assert (taken["controller"], taken["epoch"]) == ("master", epoch + 1), taken
            assert taken["pending"] is not None
            await room.watch.wait_held_by("master", timeout=5)
            restored = await site.post(f"/api/edges/{room.edge.id}/restore", {})
            assert (restored["controller"], restored["epoch"]) == ("edge", epoch + 2), restored
            await room.watch.wait_held_by("operated", timeout=5)

        async def recorded() -> bool:
            return (await site.control(room.edge))["pending"] is None

        await wait_until(recorded, timeout=2, message="the decisions to be recorded")
    kinds = await decisions(site, room)
    assert kinds[-2:] == ["takeover", "restore"], kinds

    # A restarted master never hands out an epoch again, recorded or not.
    await site.master.kill()
    await site.master.start()
    await site.master.wait_ready(verify=site.verify)
    taken = await site.post(f"/api/edges/{room.edge.id}/takeover", {})
    assert taken["epoch"] > epoch + 2 + 1, taken
    await room.watch.wait_held_by("master", timeout=5)

    assert_one_truth(sampler)
    assert room.device.max_concurrent == 1


# --- the link breaks while both APIs answer -------------------------------------------


async def test_a_link_only_fault_leaves_the_edge_in_control(site: Site, rooms: Rooms) -> None:
    timeout = 2.0  # room for a slow witness answer on a loaded machine
    async with PausableProxy(site.master.port) as proxy:
        room = await rooms.add(
            "linkless",
            timeout=timeout,
            api_url=True,
            env={"ENGINE_LINK_URL": f"https://127.0.0.1:{proxy.port}"},
        )
        await room.watch.wait_held_by("linkless", timeout=10)
        epoch = (await site.control(room.edge))["epoch"]

        async with ControllerSampler(site, room.edge) as sampler:
            proxy.pause()
            cut = time.monotonic()
            await wait_until(
                lambda: _seen_alive(site, room), timeout=5, message="the master to see it alive"
            )
            await room.watch.keeps(["linkless"], seconds=cut + 3 * timeout - time.monotonic())
            control = await site.control(room.edge)
            assert (control["controller"], control["online"]) == ("edge", False), control
            assert control["witness"]["result"] == "controls", control
            assert control["link_error"], control
            assert "edge alive at its API" in control["reason"], control["reason"]

            proxy.resume()
            await wait_until(lambda: online(site, room), timeout=5, message="the link back")
            await room.watch.keeps(["linkless"], seconds=0.5)
            assert sampler.samples[-1][1:] == (503, 200)

        control = await site.control(room.edge)
        assert (control["controller"], control["epoch"]) == ("edge", epoch), "no handover"
        assert await decisions(site, room) == ["connected", "disconnected", "alive", "connected"]
    assert_one_truth(sampler)
    assert room.watch.owners() == ["linkless"]
    assert room.device.max_concurrent == 1


async def _seen_alive(site: Site, room: Room) -> bool:
    witness = (await site.control(room.edge))["witness"]
    return witness is not None and witness["result"] == "controls"


# --- secret rotation -------------------------------------------------------------------


async def test_a_rotated_secret_keeps_the_edge_in_until_it_uses_the_new_one(
    site: Site, rooms: Rooms
) -> None:
    timeout = 5.0  # a restart takes less, though nothing below depends on it
    room = await rooms.add("rotated", timeout=timeout, api_url=True)
    await room.watch.wait_held_by("rotated", timeout=10)
    process = room.edge.process
    old = room.edge.secret

    async with ControllerSampler(site, room.edge) as sampler:
        new = (await site.post(f"/api/edges/{room.edge.id}/secret", {"grace_s": 600}))["secret"]
        await room.watch.keeps(["rotated"], seconds=0.5)  # the live link stays
        assert await online(site, room)

        # Restarted with the old secret, inside the grace: it gets in.
        await _restart(site, room, old)
        # Restarted with the new one: it gets in, and the old one ends there.
        await _restart(site, room, new)
        await process.stop()
        process.settings["ENGINE_EDGE_SECRET"] = old
        await process.start()

        async def refused() -> bool:
            return "wrong proof" in ((await site.control(room.edge))["link_error"] or "")

        await wait_until(refused, timeout=5, message="the old secret to be refused")
        edge_view = (await site.get(process, f"/api/edges/{room.edge.id}/control")).json()
        assert "refused" in (edge_view["link_error"] or ""), edge_view
        assert "refused" in ((await ready_body(site, process))["link"]["error"] or "")
        # The master, alive and refusing it, fails over ``timeout`` after the link went,
        # a moment the restarted edge cannot know: it never runs the devices beside it.
        await room.watch.wait_held_by("master", timeout=timeout + 5)
        await room.watch.keeps(["master"], seconds=3 * RETRY_S)
        await _restart(site, room, new)
    assert_one_truth(sampler)

    # Handed back, unsampled: a restore names the master until the edge runs.
    await site.post(f"/api/edges/{room.edge.id}/restore", {})
    await room.watch.wait_held_by("rotated", timeout=5)
    async with ControllerSampler(site, room.edge) as sampler:
        # Grace 0: the live link, authenticated with the secret now revoked, closes at once.
        newest = (await site.post(f"/api/edges/{room.edge.id}/secret", {"grace_s": 0}))["secret"]
        revoked_at = time.monotonic()

        async def revoked() -> bool:
            return "revoked" in ((await site.control(room.edge))["link_error"] or "")

        await wait_until(revoked, timeout=2, message="the live link to be closed")
        # The edge, locked out, yields before the master fails over: never both.
        taken = await room.watch.wait_held_by("master", timeout=timeout + 3)
        edge_view = (await site.get(process, f"/api/edges/{room.edge.id}/control")).json()
        assert edge_view["witness"]["result"] == "refused", edge_view
        await room.watch.keeps(["master"], seconds=3 * RETRY_S)
        report(
            f"revoked to the master alone on the device (timeout {timeout:g} s)", taken - revoked_at
        )
        await _restart(site, room, newest)
        await room.watch.keeps(["master"], seconds=0.5)

    assert_one_truth(sampler)
    assert room.watch.owners()[-2:] == ["rotated", "master"]
    assert room.device.max_concurrent == 1


async def test_two_rotations_in_a_row_keep_the_edge_linked(site: Site, rooms: Rooms) -> None:
    """Rotated twice with the default grace, the edge keeps its link and its devices: the
    secret it uses stays valid, and each answer names every valid secret's end."""
    timeout = 2.0
    room = await rooms.add("rotated-twice", timeout=timeout, api_url=True)
    await room.watch.wait_held_by("rotated-twice", timeout=10)
    epoch = (await site.control(room.edge))["epoch"]

    async with ControllerSampler(site, room.edge) as sampler:
        path = f"/api/edges/{room.edge.id}/secret"
        first = await site.post(path, {})
        second = await site.post(path, {})
        assert [v["current"] for v in first["valid"]] == [True, False]
        assert [v["current"] for v in second["valid"]] == [True, False, False]
        assert [v["in_use"] for v in second["valid"]] == [False, False, True]
        day = time.time() + 86400
        for valid in second["valid"][1:]:
            ends = datetime.fromisoformat(valid["until"]).timestamp()
            assert abs(ends - day) < 60, valid
        assert second["secret"] not in str(second["valid"])
        # Longer than the failover timeout plus the retries a closed link would take.
        await room.watch.keeps(["rotated-twice"], seconds=timeout + 4 * RETRY_S)
        assert await online(site, room)

    # Every secret it was given still authenticates it (asked of the master's witness).
    for secret in (room.edge.secret, first["secret"], second["secret"]):
        assert await _witness_status(site, room, secret) == 200
    assert await _witness_status(site, room, "not-a-secret") == 401
    assert_one_truth(sampler)
    control = await site.control(room.edge)
    assert (control["controller"], control["epoch"], control["link_error"]) == ("edge", epoch, None)
    assert "failover" not in await decisions(site, room)
    assert room.watch.owners() == ["rotated-twice"]


async def _witness_status(site: Site, room: Room, secret: str) -> int:
    """The master's witness's status for a question signed with ``secret``."""
    nonce, asker = secrets.token_hex(16), f"edge:{room.edge.id}"
    proof = witness_question_proof(secret, room.edge.id, nonce, asker)
    params = {"nonce": nonce, "asker": asker, "proof": proof}
    response = await site.http.get(f"/api/edges/{room.edge.id}/witness", params=params)
    return response.status_code


async def _restart(site: Site, room: Room, secret: str) -> None:
    process = room.edge.process
    await process.stop()
    await wait_until(lambda: _offline(site, room), timeout=5, message="the edge gone")
    process.settings["ENGINE_EDGE_SECRET"] = secret
    await process.start()
    await wait_until(lambda: online(site, room), timeout=10, message="the edge back")
    assert (await site.control(room.edge))["link_error"] is None


async def _offline(site: Site, room: Room) -> bool:
    return not await online(site, room)


# --- strangers -------------------------------------------------------------------------


async def test_a_flood_of_wrong_hellos_does_not_keep_the_edge_out(site: Site, rooms: Rooms) -> None:
    async with PausableProxy(site.master.port) as proxy, AsyncExitStack() as stack:
        room = await rooms.add(
            "flooded", timeout=10, env={"ENGINE_LINK_URL": f"https://127.0.0.1:{proxy.port}"}
        )
        await room.watch.wait_held_by("flooded", timeout=10)
        link_url = websocket_url(site.master.url, LINK_PATH)
        flood = Flood(link_url, room.edge.id, site)
        sampler = await stack.enter_async_context(ControllerSampler(site, room.edge))
        flooding = asyncio.create_task(flood.run(count=200, seconds=10.0))
        try:
            await wait_until(lambda: flood.sent >= 40, timeout=5, message="the flood to start")
            connected = (await decisions(site, room)).count("connected")
            proxy.cut()

            async def back() -> bool:
                return (await decisions(site, room)).count("connected") > connected

            took = await wait_until(back, timeout=2 * RETRY_S + 1, message="the edge back in")
            report("link cut to the edge back in, during a flood of wrong hellos", took)
        finally:
            await flooding
        assert flood.sent == 200, f"the flood sent {flood.sent} wrong hellos"
    assert_one_truth(sampler)
    assert room.watch.owners() == ["flooded"]


class Flood:
    """Hellos with a wrong proof claiming a real edge's id, from the edge's own address."""

    def __init__(self, url: str, edge_id: str, site: Site) -> None:
        self.url = url
        self.edge_id = edge_id
        self.site = site
        self.sent = 0

    async def run(self, *, count: int, seconds: float) -> None:
        """``count`` wrong hellos spread evenly over ``seconds``; each is refused with 4401."""
        started = time.monotonic()
        for n in range(count):
            await self._one(n)
            self.sent = n + 1
            await asyncio.sleep(max(0.0, started + seconds * (n + 1) / count - time.monotonic()))

    async def _one(self, n: int) -> None:
        tls = self.site.certificates.client()
        async with connect(self.url, ssl=tls, compression=None) as websocket:
            challenge = json.loads(await websocket.recv())
            assert challenge["type"] == "challenge"
            hello = {
                "type": "hello",
                "edge_id": self.edge_id,
                "boot_time": 0.0,
                "nonce": f"{n:064x}",
                "proof": "0" * 64,
                "devices_loaded": True,
                "replica_seq": 0,
                "commit": None,
            }
            await websocket.send(json.dumps(hello))
            await websocket.wait_closed()
            assert websocket.close_code == 4401


# --- a frozen edge ---------------------------------------------------------------------


async def test_a_frozen_edge_resumes_into_at_most_one_second_of_double_control(
    site: Site, rooms: Rooms
) -> None:
    room = await rooms.add("frozen", timeout=TIMEOUT_S, api_url=True)
    await room.watch.wait_held_by("frozen", timeout=10)
    pid = room.edge.process.pid

    async with ControllerSampler(site, room.edge) as sampler:
        os.kill(pid, signal.SIGSTOP)
        try:
            await wait_until(
                lambda: sorted(map(str, room.watch.open_owners())) == ["frozen", "master"],
                timeout=3 * PING_S + TIMEOUT_S + 3,
                message="the master to take over from the frozen edge",
            )
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        alone = await room.watch.wait_held_by("master", timeout=5)
        report("frozen edge resumed to the master alone on the device", alone - resumed)
        assert alone - resumed <= 1.0
        await room.watch.keeps(["master"], seconds=0.5)
    assert_one_truth(sampler)
    async with httpx.AsyncClient(timeout=2) as http:
        probe = await http.get(f"{room.edge.process.url}/api/edges/{room.edge.id}/controller")
    assert probe.status_code == 503


async def test_a_takeover_a_frozen_edge_cannot_confirm_leaves_it_the_devices(
    site: Site, rooms: Rooms
) -> None:
    room = await rooms.add("unanswering", timeout=TIMEOUT_S, api_url=True)
    await room.watch.wait_held_by("unanswering", timeout=10)
    pid = room.edge.process.pid

    os.kill(pid, signal.SIGSTOP)
    try:
        # Sampled while the edge is frozen: once it resumes, it answers the probes that
        # waited for it before it hears of the failover (the frozen-edge test above).
        async with ControllerSampler(site, room.edge) as sampler:
            asked = time.monotonic()
            response = await site.http.post(f"/api/edges/{room.edge.id}/takeover", json={})
            answered = time.monotonic()
            report("takeover of a frozen edge refused after", answered - asked)
            assert response.status_code == 503, response.text
            assert "did not confirm" in response.json()["detail"], response.text
            assert "Retry-After" in response.headers
            # The master never starts beside an edge that may still run the devices: it
            # waits like after any link loss, then fails over (the witness is silent).
            assert room.watch.open_owners() == ["unanswering"]
            control = await site.control(room.edge)
            assert (control["controller"], control["online"]) == ("edge", False), control
            await wait_until(
                lambda: sorted(map(str, room.watch.open_owners())) == ["master", "unanswering"],
                timeout=TIMEOUT_S + 3,
                message="the failover after the unconfirmed takeover",
            )
            report("unconfirmed takeover to failover", time.monotonic() - answered)
            assert time.monotonic() - answered >= TIMEOUT_S * 0.9
    finally:
        os.kill(pid, signal.SIGCONT)
    assert_one_truth(sampler)
    await room.watch.wait_held_by("master", timeout=5)
    kinds = await decisions(site, room)
    taken = kinds.index("takeover")
    assert kinds[taken : taken + 3] == ["takeover", "unconfirmed", "failover"], kinds
