"""The masters' leader election against a real three-member etcd (app/cluster).

Leases are 2 s here (etcd's least with this cluster's timing is 1 s); every wait is
on a condition, and the figures asserted are the lease rule's, not tuned timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from app.cluster import Elector, LeaderFence, NodeIdentity, Term
from app.store.etcd import EtcdClient, EtcdConfig, EtcdStore, FenceLost
from tests.support.etcd import EtcdCluster
from tests.support.proxy import PausableProxy
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

LEASE_S = 2


@pytest.fixture
def url(etcd_cluster: EtcdCluster) -> str:
    return etcd_cluster.url()


@contextlib.asynccontextmanager
async def elector(url: str, name: str, **options: object) -> AsyncIterator[Elector]:
    config = EtcdConfig.from_url(url)
    client = EtcdClient(config, timeout_s=1.0)
    try:
        yield Elector(
            client,
            config.prefix,
            NodeIdentity(name, f"http://{name}.test"),
            lease_s=LEASE_S,
            **options,  # type: ignore[arg-type]
        )
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def running(candidate: Elector) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(candidate.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.contextmanager
def elector_process(url: str, name: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.elector", url, name, str(LEASE_S)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


async def test_one_campaign_wins_and_the_others_see_who_leads(url: str) -> None:
    async with elector(url, "a") as a, elector(url, "b") as b:
        term = await a.campaign()
        assert isinstance(term, Term)
        assert a.leading
        assert await b.campaign() is None
        assert not b.leading
        leader = await b.leader()
        assert leader is not None
        assert (leader.node.name, leader.node.url, leader.epoch) == (
            "a",
            "http://a.test",
            term.epoch,
        )
        await a.resign()
        assert await b.leader() is None


async def test_a_resigned_leadership_is_taken_within_a_second(url: str) -> None:
    async with elector(url, "a") as a, elector(url, "b") as b:
        async with running(a) as a_task, running(b):
            await wait_until(lambda: a.leading or b.leading, timeout=5, message="a leader")
            first, second = (a, b) if a.leading else (b, a)
            first_term = first.term
            assert first_term is not None
            if first is a:
                a_task.cancel()  # a clean stop resigns
            else:
                await first.resign()
            taken = await wait_until(lambda: second.leading, timeout=5, message="the takeover")
            assert taken < 1.0, f"the standby took {taken:.2f} s after a resignation"
            second_term = second.term
            assert second_term is not None
            assert second_term.epoch > first_term.epoch, "epochs grow across leaders"


async def test_a_killed_leader_is_replaced_once_its_lease_ends(url: str) -> None:
    with elector_process(url, "a") as process:
        assert process.stdout is not None
        first = await asyncio.to_thread(_first_leading_line, process)
        async with elector(url, "b") as b, running(b):
            await asyncio.sleep(0)  # b campaigns and loses: a leads
            assert not b.leading
            process.kill()
            killed_at = time.monotonic()
            await wait_until(lambda: b.leading, timeout=LEASE_S + 3, message="the takeover")
            taken = time.monotonic() - killed_at
            # The lease ends at most LEASE_S after the kill; etcd checks for expired
            # leases every 500 ms.
            assert taken < LEASE_S + 1.0, f"took {taken:.2f} s after the kill"
            assert b.term is not None and b.term.epoch > first["epoch"]


async def test_a_leader_frozen_past_its_lease_resumes_as_a_standby(url: str) -> None:
    """SIGSTOP for twice the lease, then SIGCONT: the other master led meanwhile, and the
    first word of the resumed one is that it does not lead."""
    with elector_process(url, "a") as process:
        first = await asyncio.to_thread(_first_leading_line, process)
        async with elector(url, "b") as b, running(b):
            os.kill(process.pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            try:
                await wait_until(lambda: b.leading, timeout=LEASE_S + 3, message="b takes over")
                # the scenario itself: the freeze lasts twice the lease
                await asyncio.sleep(max(0.0, frozen_at + 2 * LEASE_S - time.monotonic()))
            finally:
                os.kill(process.pid, signal.SIGCONT)
            resumed = await asyncio.to_thread(_next_line, process)
            assert resumed == {"name": "a", "leading": False, "epoch": None}
            assert b.leading and b.term is not None and b.term.epoch > first["epoch"]


def _next_line(process: subprocess.Popen[str]) -> dict[str, object]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, "the elector process ended"
    return dict(json.loads(line))


def _first_leading_line(process: subprocess.Popen[str]) -> dict[str, int]:
    """The first report of the process leading: ``{"epoch": …}``."""
    assert process.stdout is not None
    for line in process.stdout:
        report = json.loads(line)
        if report["leading"]:
            return {"epoch": int(report["epoch"])}
    raise AssertionError("the elector process never led")


async def test_a_leader_cut_from_etcd_stops_acting_before_its_lease_could_end(
    etcd_cluster: EtcdCluster, url: str
) -> None:
    member = etcd_cluster.members[0]
    async with PausableProxy(member.client_port) as proxy:
        cut_url = url.replace(etcd_cluster.endpoints, f"127.0.0.1:{proxy.port}")
        async with elector(cut_url, "a") as a, elector(url, "b") as b:
            async with running(a):
                await wait_until(lambda: a.leading, timeout=5, message="a to lead")
                async with running(b):
                    observer = EtcdClient(EtcdConfig.from_url(url))
                    try:
                        gone = asyncio.create_task(_leader_key_deleted(observer, a.key))
                        await asyncio.sleep(0.1)
                        proxy.pause()
                        paused_at = time.monotonic()
                        demoted = await wait_until(
                            lambda: not a.leading, timeout=LEASE_S + 1, message="a demotes"
                        )
                        key_gone = await asyncio.wait_for(gone, LEASE_S + 3) - paused_at
                    finally:
                        await observer.close()
                    assert demoted < key_gone, (
                        f"a stopped acting {demoted:.2f} s after the cut, but its key "
                        f"went {key_gone:.2f} s after it"
                    )
                    assert demoted < LEASE_S
                    await wait_until(lambda: b.leading, timeout=3, message="b takes over")
                    proxy.resume()


async def _leader_key_deleted(client: EtcdClient, key: str) -> float:
    found = await client.range(key)
    async for response in client.watch(key, start_revision=found.revision + 1):
        if any(event.deleted for event in response.events):
            return time.monotonic()
    raise AssertionError("the watch ended")


async def test_a_deposed_leaders_fenced_write_is_refused_by_etcd(url: str) -> None:
    """A leader whose clock says it still leads (frozen at 0: it never learns otherwise)
    writes after another master took over: etcd's compare refuses it."""
    async with elector(url, "a", clock=lambda: 0.0) as stale, elector(url, "b") as b:
        config = EtcdConfig.from_url(url)
        stale_store = EtcdStore(config, fence=LeaderFence(stale))
        b_store = EtcdStore(config, fence=LeaderFence(b))
        await stale_store.open()
        await b_store.open()
        try:
            assert await stale.campaign() is not None  # and never renews: the lease ends
            written = await stale_store.insert("doc", "driver", {"by": "a"})
            async with running(b):
                await wait_until(lambda: b.leading, timeout=LEASE_S + 3, message="b takes over")
                assert stale.leading, "its own view is stale on purpose"
                with pytest.raises(FenceLost):
                    await stale_store.replace("doc", {"by": "a, deposed"})
                with pytest.raises(FenceLost):
                    await stale_store.upsert("other", "driver", {"by": "a, deposed"})
                assert await b_store.get("doc") == written
                await b_store.replace("doc", {"by": "b"}, expected_version=written.version)
                assert (await stale_store.get("doc")).body == {"by": "b"}
        finally:
            await stale_store.close()
            await b_store.close()


async def test_a_store_without_leadership_refuses_fenced_writes_itself(url: str) -> None:
    async with elector(url, "a") as a:
        store = EtcdStore(EtcdConfig.from_url(url), fence=LeaderFence(a))
        await store.open()
        try:
            with pytest.raises(FenceLost):
                await store.insert("doc", "driver", {})
            assert await store.get_many(["doc"]) == {}
        finally:
            await store.close()
