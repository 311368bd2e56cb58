"""Faults the field brings, between real processes: never two controllers.

An expired master certificate, a cloned edge, a one-way network, and the client
websocket's keep-alive. Each scenario watches the device (who holds its connection)
and asks every server's controller probe (``GET /api/edges/{id}/controller``) every
100 ms. Run with ``-s`` to see the timings.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.master.witnesses import MAX_BACKOFF
from app.node_process import NodeProcess, free_port
from app.sim.line_device import LineDevice
from tests.integration.rooms import TCP_LINE, TIMEOUT_S, Room, Rooms, decisions, online, report
from tests.integration.sites import AUTH, FAST, PING_S, RETRY_S, TOKEN, Edge, Site, Tls, open_site
from tests.support.proxy import PausableProxy
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

#: ENGINE_WITNESS_TIMEOUT_S of the sites (tests/integration/sites.py).
WITNESS_S = float(FAST["ENGINE_WITNESS_TIMEOUT_S"])


class Probes:
    """Asks each server's controller probe for one location every ``interval`` seconds."""

    def __init__(
        self,
        site: Site,
        edge_id: str,
        servers: Mapping[str, NodeProcess],
        *,
        interval: float = 0.1,
    ) -> None:
        self._site = site
        self._path = f"/api/edges/{edge_id}/controller"
        self._servers = dict(servers)
        self._interval = interval
        #: (monotonic time, the servers that answered 200).
        self.samples: list[tuple[float, list[str]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Probes:
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def doubled(self) -> list[tuple[float, list[str]]]:
        """Samples in which two servers or more said they control the location."""
        return [sample for sample in self.samples if len(sample[1]) > 1]

    def longest_doubled_s(self) -> float:
        """The longest stretch of consecutive doubled samples, in seconds."""
        longest, start = 0.0, None
        for at, holders in self.samples:
            if len(holders) > 1:
                start = at if start is None else start
                longest = max(longest, at - start + self._interval)
            else:
                start = None
        return longest

    async def _sample(self) -> None:
        async with httpx.AsyncClient(verify=self._site.verify, timeout=0.5) as http:
            while True:
                started = time.monotonic()
                holders = []
                for name, server in self._servers.items():
                    if not server.running:
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(f"{server.url}{self._path}")).status_code == 200:
                            holders.append(name)
                self.samples.append((started, holders))
                await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - started)))


async def ready_body(site: Site, server: NodeProcess) -> dict[str, Any]:
    response = await site.get(server, "/api/ready")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def edge_view(site: Site, server: NodeProcess, edge_id: str) -> dict[str, Any]:
    """``/control`` as ``server`` describes the location."""
    response = await site.get(server, f"/api/edges/{edge_id}/control")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def metric(site: Site, server: NodeProcess, sample: str) -> float | None:
    """The value of one sample (name with labels) of ``server``'s ``/metrics``."""
    text = (await site.get(server, "/metrics")).text
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[1])
    return None


# --- an expired certificate ------------------------------------------------------------

#: How long the master's certificate lives from the moment it is issued: the setup
#: (a master, an edge, its link, a takeover) must be done before it expires.
CERTIFICATE_LIFE_S = 18.0


async def test_an_edge_locked_out_by_an_expired_master_certificate_starts_nothing(
    tmp_path: Path,
) -> None:
    issued_at = time.monotonic()
    not_after = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=CERTIFICATE_LIFE_S)
    tls = Tls.issue(tmp_path / "tls", not_after=not_after)
    async with (
        open_site(tmp_path, tls=tls) as site,
        AsyncExitStack() as stack,
        PausableProxy(site.master.port) as link_path,
    ):
        rooms = Rooms(site, stack)
        room = await rooms.add(
            "expiring",
            timeout=TIMEOUT_S,
            api_url=True,
            env={"ENGINE_LINK_URL": f"https://127.0.0.1:{link_path.port}"},
        )
        edge = room.edge.process
        await room.watch.wait_held_by("expiring", timeout=10)

        # Both sides report the certificate before it expires.
        own = (await ready_body(site, site.master))["tls"]["certificate"]
        assert (own["not_after"], own["expiring"], own["expired"]) == (
            not_after.isoformat(),
            True,
            False,
        )
        seen = (await ready_body(site, edge))["tls"]["master_certificate"]
        assert (seen["not_after"], seen["expiring"]) == (not_after.isoformat(), True)
        expiry = 'engine_tls_certificate_expiry_timestamp_seconds{certificate="master"}'
        assert await metric(site, edge, expiry) == not_after.timestamp()
        assert "this server's TLS certificate" in site.master.log()
        assert "the master's TLS certificate" in edge.log()

        # The master takes the devices over (planned maintenance, say).
        taken = await site.post(f"/api/edges/{room.edge.id}/takeover", {})
        assert taken["controller"] == "master", taken
        await room.watch.wait_held_by("master", timeout=5)
        report("setup done, before the certificate expired", time.monotonic() - issued_at)
        assert datetime.now(UTC) < not_after - timedelta(seconds=1), "the setup took too long"
        await wait_until(
            lambda: datetime.now(UTC) > not_after + timedelta(seconds=1),
            timeout=CERTIFICATE_LIFE_S + 5,
            interval=0.2,
            message="the master's certificate to expire",
        )

        servers = {"master": site.master, "expiring": edge}
        async with Probes(site, room.edge.id, servers) as probes:
            link_path.cut()  # the link drops; every attempt since meets the expired certificate

            async def refused_for_tls() -> bool:
                link = (await ready_body(site, edge))["link"]
                return bool(link["link_state"] == "tls")

            await wait_until(refused_for_tls, timeout=5, message="the edge to report tls")
            # Many attempts and longer than the failover timeout: it starts nothing.
            await room.watch.keeps(["master"], seconds=max(3.0, 10 * RETRY_S, 2 * TIMEOUT_S))

            link = (await ready_body(site, edge))["link"]
            assert (link["connected"], link["master_alive"]) == (False, True), link
            assert "certificate has expired" in link["error"], link
            view = await edge_view(site, edge, room.edge.id)
            assert (view["link_state"], view["master_alive"]) == ("tls", True), view
            assert (view["controller"], view["online"]) == ("master", False), view
            assert view["witness"]["result"] == "tls", view
            assert await metric(site, edge, 'engine_link_state{state="tls"}') == 1
            assert await metric(site, edge, 'engine_link_state{state="up"}') == 0
            control = await site.control(room.edge)
            assert (control["controller"], control["online"]) == ("master", False), control
            expired = (await ready_body(site, site.master))["tls"]["certificate"]
            assert expired["expired"] is True

    assert probes.samples and not probes.doubled(), probes.doubled()[:5]
    assert all(holders == ["master"] for _, holders in probes.samples), probes.samples[:5]
    assert room.watch.owners() == ["expiring", "master"]
    assert room.device.max_concurrent == 1


# --- a cloned edge -----------------------------------------------------------------------


async def clone_of(site: Site, room: Room, name: str) -> Edge:
    """A second server with the edge's id and secret and a copy of its replica, as a
    copied VM image would be; not started."""
    original = room.edge.process
    own = ("ENGINE_DATABASE_URL", "ENGINE_DRIVERS_PATH", "ENGINE_PUBLIC_URL")
    settings = {k: v for k, v in original.settings.items() if k not in own}
    clone = NodeProcess(name, site.root / name, port=free_port(), settings=settings)
    clone.workdir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(_copy_store, original.workdir, clone.workdir)
    edge = room.edge
    copy = Edge(name, edge.id, edge.secret, edge.system_id, edge.module_id, clone)
    site.edges[name] = copy  # its connections are told apart, and it is stopped at the end
    return copy


def _copy_store(source: Path, target: Path) -> None:
    """The store's files as they are on disk (the server holds the database exclusively,
    as a copied disk image would find it: the copy recovers its write-ahead log)."""
    for path in source.glob("engine.db*"):
        shutil.copyfile(path, target / path.name)


async def refused_as_duplicate(site: Site, server: NodeProcess) -> bool:
    link = (await ready_body(site, server))["link"]
    return bool(link["link_state"] == "refused" and "duplicate" in (link["error"] or ""))


async def test_a_cloned_edge_is_refused_and_never_runs_beside_the_original(
    site: Site, rooms: Rooms
) -> None:
    timeout = 5.0  # the clone gets in once the original is found dead, before any failover
    room = await rooms.add("original", timeout=timeout, api_url=True)
    await room.watch.wait_held_by("original", timeout=10)
    original = room.edge.process
    original_instance = (await ready_body(site, original))["link"]["instance_id"]
    clone = (await clone_of(site, room, "clone")).process
    connected = (await decisions(site, room)).count("connected")
    refusals = f'engine_link_duplicates_refused_total{{edge_id="{room.edge.id}"}}'

    servers = {"master": site.master, "original": original, "clone": clone}
    async with Probes(site, room.edge.id, servers) as probes:
        await clone.start()
        await clone.wait_ready()
        await wait_until(
            lambda: refused_as_duplicate(site, clone), timeout=5, message="the clone refused"
        )

        async def refused_often() -> bool:
            return (await metric(site, site.master, refusals) or 0) >= 5

        await wait_until(refused_often, timeout=5, message="five refusals")
        await room.watch.keeps(["original"], seconds=10 * RETRY_S)

        clone_link = (await ready_body(site, clone))["link"]
        assert clone_link["master_alive"] is True, clone_link
        assert clone_link["instance_id"] != original_instance
        duplicate = (await site.control(room.edge))["duplicate"]
        assert duplicate["instance"] == clone_link["instance_id"], duplicate
        assert duplicate["linked_instance"] == original_instance, duplicate
        assert duplicate["refusals"] >= 5 and duplicate["address"] == "127.0.0.1", duplicate
        clone_view = await edge_view(site, clone, room.edge.id)
        assert (clone_view["controller"], clone_view["online"]) == ("none", False), clone_view
        assert (clone_view["link_state"], clone_view["master_alive"]) == ("refused", True)
        kinds = await decisions(site, room)
        assert kinds.count("duplicate") == 1, kinds
        assert kinds.count("connected") == connected, "the two never took turns"

        # The original dies: once its link is found dead, the clone gets in and runs.
        await original.kill()
        await room.watch.wait_held_by("clone", timeout=timeout)
        # The original, started again (a new instance id), is now the one refused.
        await original.start()
        await original.wait_ready()
        await wait_until(
            lambda: refused_as_duplicate(site, original), timeout=5, message="the original refused"
        )
        await room.watch.keeps(["clone"], seconds=5 * RETRY_S)

    assert probes.samples and not probes.doubled(), probes.doubled()[:5]
    assert room.watch.owners() == ["original", "clone"]
    assert room.device.max_concurrent == 1


# --- a one-way network -------------------------------------------------------------------

#: How many times the network is cut one way, the edge in control each time.
CUTS = 2


async def room_with_api_path(
    rooms: Rooms, stack: AsyncExitStack, name: str, **fields: Any
) -> tuple[Room, PausableProxy]:
    """An edge location in control of its device, whose ``api_url`` (where the master
    asks its witness) goes through a pausable proxy; ``fields`` as for ``add_edge``."""
    room = await rooms.add(name, timeout=TIMEOUT_S, start=False, **fields)
    edge = room.edge.process
    api_path = await stack.enter_async_context(PausableProxy(edge.port))
    await rooms.site.patch_edge(room.edge, {"api_url": f"http://127.0.0.1:{api_path.port}"})
    await edge.start()
    await edge.wait_ready()
    await room.watch.wait_held_by(name, timeout=10)
    return room, api_path


async def test_a_one_way_network_gives_two_controllers_for_at_most_a_ping_and_a_witness_timeout(
    site: Site, rooms: Rooms
) -> None:
    async with PausableProxy(site.master.port) as link_path, AsyncExitStack() as stack:
        link_url = f"https://127.0.0.1:{link_path.port}"
        room, api_path = await room_with_api_path(
            rooms, stack, "oneway", env={"ENGINE_LINK_URL": link_url}
        )
        edge = room.edge.process

        overlaps: list[float] = []
        async with Probes(site, room.edge.id, {"master": site.master, "oneway": edge}) as probes:
            for _ in range(CUTS):
                before = room.watch.overlap_s()
                # The link and the edge's API drop; the edge still reaches the master's API.
                link_path.pause()
                api_path.pause()
                await room.watch.wait_held_by("master", timeout=3 * PING_S + TIMEOUT_S + 5)
                overlaps.append(room.watch.overlap_s() - before)
                view = await edge_view(site, edge, room.edge.id)
                assert view["witness"]["result"] == "controls", view
                assert view["controller"] == "master", view
                # Its attempt over the silent path may not have timed out yet: the witness
                # told it before, whatever the attempt was doing.
                assert view["link_state"] in ("closed", "unreachable"), view
                await room.watch.keeps(["master"], seconds=5 * RETRY_S)

                link_path.resume()
                api_path.resume()
                await wait_until(lambda: online(site, room), timeout=10, message="the link back")
                await room.watch.keeps(["master"], seconds=0.3)
                await site.post(f"/api/edges/{room.edge.id}/restore", {})
                await room.watch.wait_held_by("oneway", timeout=5)

    for overlap in overlaps:
        report("one-way cut: two controllers on the device for", overlap)
    report("one-way cut: /controller 200 on both for at most", probes.longest_doubled_s())
    bound = PING_S + WITNESS_S
    assert max(overlaps) <= bound, f"{overlaps} > {bound} s"
    # A sample asks both servers within a few milliseconds: one sample at most more.
    assert probes.longest_doubled_s() <= bound + 0.1, probes.doubled()
    kinds = await decisions(site, room)
    assert kinds.count("failover") == CUTS, kinds


async def test_when_only_the_master_reaches_the_edge_after_a_partition_the_master_yields(
    site: Site, rooms: Rooms
) -> None:
    async with PausableProxy(site.master.port) as master_path, AsyncExitStack() as stack:
        master_url = f"https://127.0.0.1:{master_path.port}"
        room, api_path = await room_with_api_path(rooms, stack, "reverse", master_url=master_url)
        edge = room.edge.process

        async with Probes(site, room.edge.id, {"master": site.master, "reverse": edge}) as probes:
            # A full partition: the master fails over while the edge runs on (the seed's rule).
            master_path.pause()
            api_path.pause()
            await wait_until(
                lambda: sorted(map(str, room.watch.open_owners())) == ["master", "reverse"],
                timeout=3 * PING_S + TIMEOUT_S + 5,
                message="the master to fail over while the edge runs on",
            )
            # Only the master's way to the edge heals: the edge cannot hear the master.
            api_path.resume()
            healed = time.monotonic()
            alone = await room.watch.wait_held_by("reverse", timeout=10)
            control = await site.control(room.edge)
            assert (control["controller"], control["online"]) == ("edge", False), control
            assert "does not reach the master's witness" in control["reason"], control
            # The edge's witness keeps the failover off: the devices stay with it.
            await room.watch.keeps(["reverse"], seconds=2 * TIMEOUT_S)

            master_path.resume()
            await wait_until(lambda: online(site, room), timeout=10, message="the link back")
            await room.watch.keeps(["reverse"], seconds=0.5)
            kinds = await decisions(site, room)

    report("one-way heal (master to edge only) to the edge alone", alone - healed)
    # The master asked the unanswering edge less and less often, then takes two intervals
    # and timeouts of claims without a question to know it deaf.
    asked_again = MAX_BACKOFF * PING_S + WITNESS_S
    assert alone - healed <= asked_again + 2 * (PING_S + WITNESS_S) + PING_S + 0.5
    assert kinds == ["connected", "disconnected", "failover", "yield", "connected"], kinds
    assert probes.samples[-1][1] == ["reverse"]


# --- the client websocket's keep-alive ---------------------------------------------------

#: The keep-alive of the websockets this master accepts, apart from the link's.
WS_PING_S = 2.0


class SilentClient:
    """A websocket client that never answers the server's pings (a frozen tab, a busy
    device): the handshake and frames by hand, over a plain socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, path: str) -> SilentClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path}?bearer_token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        assert len(data) < 126
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))
        self.writer.write(bytes([0x81, 0x80 | len(data)]) + mask + masked)

    async def closed(self) -> None:
        """Read (and never answer) until the server closes the connection."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass
        self.writer.close()


async def test_a_client_websocket_is_held_to_its_own_keep_alive_and_closes_quietly(
    tmp_path: Path,
) -> None:
    device = LineDevice(name="lobby display")
    await device.start()
    try:
        async with open_site(tmp_path, tls=False, ENGINE_WS_PING_INTERVAL_S=str(WS_PING_S)) as site:
            module = {"name": "Display", "ip": "127.0.0.1", "port": device.port}
            system_id, _ = await site.add_room("lobby", driver=TCP_LINE, module=module)
            client = await SilentClient.connect(site.master.port, "/api/ws")
            client.send(
                f'{{"id":1,"cmd":"bind","sys":"{system_id}","mod":"Display","name":"last_reply"}}'
            )
            opened = time.monotonic()
            closing = asyncio.create_task(client.closed())

            async def notify() -> None:
                """Status changes the server pushes to the client all along."""
                async with httpx.AsyncClient(base_url=site.master.url, headers=AUTH) as http:
                    for n in range(10_000):
                        await http.post(
                            f"/api/systems/{system_id}/exec",
                            json={"module": "Display", "method": "send", "args": [f"n{n}"]},
                        )
                        await asyncio.sleep(0.02)

            notifying = asyncio.create_task(notify())
            try:
                await asyncio.wait_for(asyncio.shield(closing), 4 * WS_PING_S + 5)
            finally:
                notifying.cancel()
                await asyncio.gather(notifying, return_exceptions=True)
            closed_after = time.monotonic() - opened
            report("a client that never answers pings closed after", closed_after)
            # Not after the link's three ping intervals: after its own keep-alive.
            assert closed_after >= 1.25 * WS_PING_S > 3 * PING_S
            log = site.master.log()
            assert "Unexpected ASGI message" not in log, log[-2000:]
            assert "Exception in ASGI application" not in log, log[-2000:]
    finally:
        await device.stop()
