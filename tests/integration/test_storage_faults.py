"""Storage faults, between real processes: a full disk at an edge, a corrupt page in
its replica, a document its boot cannot read, a master killed between two writes.

Each edge scenario watches the device (who holds its connection) and samples the
controller probe of the master and the edge every 100 ms: the location never has two
controllers, and never none beyond what the seed's rules allow. Run with ``-s`` to see
the timings.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest

from app.services.control import history, persisted_state
from tests.integration.rooms import TIMEOUT_S, ControllerSampler, Room, Rooms, report
from tests.integration.sites import Edge, Site
from tests.support.corruption import corrupt_a_page, spoil_the_document
from tests.support.stores import opened
from tests.support.wait import wait_until
from tests.unit.master.test_supervision import EDGE

pytestmark = pytest.mark.integration

#: Where ``tests`` can be imported from: the child processes' working directory.
CHECKOUT = Path(__file__).resolve().parents[2]
#: Room on the edge's small disk: its replica and write-ahead log, with space to spare.
DISK_BYTES = 16 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of ``DISK_BYTES`` mounted for the test (root only), unmounted after it.

    Requested before ``site``, so the servers on it stop before it is unmounted.
    """
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root and CAP_SYS_ADMIN needed): {done.stderr}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        while _wrote(out, b"\0" * (64 * 1024)):
            pass
    return filler


def _wrote(out: BinaryIO, chunk: bytes) -> bool:
    """Write ``chunk`` (or what fits of it) to the disk; False once the disk is full."""
    try:
        out.write(chunk)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        return False
    return True


async def edge_json(site: Site, edge: Edge, path: str) -> dict[str, Any]:
    response = await site.get(edge.process, path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def edge_metric(site: Site, edge: Edge, name: str) -> float:
    return metric_value((await site.get(edge.process, "/metrics")).text, name)


async def master_metric(site: Site, name: str) -> float:
    return metric_value((await site.get(site.master, "/metrics")).text, name)


def metric_value(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


def assert_edge_alone(sampler: ControllerSampler) -> None:
    """Every sample: the master does not control, the edge does whenever it answered."""
    assert sampler.samples, "the sampler took no samples"
    assert not sampler.doubled(), f"/controller 200 on both servers: {sampler.doubled()[:5]}"
    master = [s for s in sampler.samples if s[1] == 200]
    assert not master, f"the master claimed the location: {master[:5]}"
    idle = [s for s in sampler.samples if s[2] not in (200, 0)]
    assert not idle, f"the location had no controller: {idle[:5]}"


# --- a full disk at the edge ----------------------------------------------------------


async def test_a_full_disk_at_the_edge_is_reported_and_heals_without_a_master_write(
    small_disk: Path, site: Site, rooms: Rooms
) -> None:
    database = small_disk / "engine.db"
    room = await rooms.add("full", env={"ENGINE_DATABASE_URL": f"sqlite:///{database}"})
    await room.watch.wait_held_by("full", timeout=10)
    edge = room.edge
    own = f"/api/edges/{edge.id}/control"

    async with ControllerSampler(site, edge) as sampler:
        filler = fill(small_disk)
        # A master write the edge cannot store: a room elsewhere, with a sizeable note.
        lobby = await site.post(
            "/api/systems", {"name": "Lobby", "settings": {"note": "x" * 100_000}}
        )
        written = time.monotonic()

        async def reported() -> bool:
            return (await edge_json(site, edge, own))["replication_error"] is not None

        await wait_until(reported, timeout=10, message="the edge to report replication_error")
        report("master write to replication_error on the edge", time.monotonic() - written)
        control = await edge_json(site, edge, own)
        assert "full" in control["replication_error"], control
        assert control["replication_error_since"] is not None, control
        ready = await edge_json(site, edge, "/api/ready")
        assert ready["replication_error"] is not None, ready
        assert "full" in ready["replication_error"]["error"], ready
        assert await edge_metric(site, edge, "engine_replication_error") == 1

        # Retried with backoff while the master writes nothing more.
        async def retried() -> bool:
            failing = (await edge_json(site, edge, "/api/ready"))["replication_error"]
            return failing is not None and failing["retries"] >= 3

        await wait_until(retried, timeout=10, message="the edge to retry on its own")
        assert await edge_metric(site, edge, "engine_replication_failures_total") >= 4
        assert (await site.get(edge.process, f"/api/systems/{lobby['id']}")).status_code == 404
        master_seq = await master_metric(site, "engine_store_seq")

        # Space freed: the replica catches up by itself, with no write from the master.
        filler.unlink()
        freed = time.monotonic()

        async def caught_up() -> bool:
            body = await edge_json(site, edge, "/api/ready")
            return body["replication_error"] is None

        await wait_until(caught_up, timeout=10, message="the replica to catch up by itself")
        report("space freed to the replica caught up", time.monotonic() - freed)
        assert (await site.get(edge.process, f"/api/systems/{lobby['id']}")).status_code == 200
        assert (await edge_json(site, edge, own))["replication_error"] is None
        assert await edge_metric(site, edge, "engine_replication_error") == 0
        assert await master_metric(site, "engine_store_seq") == master_seq, "no master write"
        assert (await edge_json(site, edge, "/api/ready"))["replica_seq"] == master_seq
        await room.watch.keeps(["full"], seconds=0.3)

    assert_edge_alone(sampler)
    assert room.watch.owners() == ["full"], room.watch.connections
    assert room.device.max_concurrent == 1
    log = edge.process.log()
    assert log.count("retried with backoff until the replica has caught up") == 1, log
    assert "caught up with the master again" in log


# --- a corrupt page in the replica ----------------------------------------------------


async def stopped_and_failed_over(rooms: Rooms, name: str) -> Room:
    """A location whose edge ran its device, then stopped cleanly (its write-ahead log
    folded into the file) and was failed over by the master."""
    room = await rooms.add(name, timeout=TIMEOUT_S)
    await room.watch.wait_held_by(name, timeout=10)
    await room.edge.process.stop()
    await room.watch.wait_held_by("master", timeout=TIMEOUT_S + 3)
    return room


async def test_a_corrupt_replica_is_set_aside_and_rebuilt_from_the_master(
    site: Site, rooms: Rooms
) -> None:
    room = await stopped_and_failed_over(rooms, "corrupt")
    edge = room.edge
    database = edge.process.workdir / "engine.db"
    corrupt_a_page(database, "docs")

    async with ControllerSampler(site, edge) as sampler:
        restarted = time.monotonic()
        await edge.process.start()
        await edge.process.wait_ready(timeout=15, verify=site.verify)
        report("corrupt replica: edge start to ready, rebuilt", time.monotonic() - restarted)
        ready = await edge_json(site, edge, "/api/ready")
        set_aside = ready["replica_set_aside"]
        assert set_aside is not None, ready
        assert set_aside["problems"], set_aside
        moved = Path(set_aside["moved_to"])
        assert moved.parent == database.parent and moved.name.startswith("engine.db.corrupt-")
        assert moved.exists(), "the corrupt copy is kept for a post-mortem"
        assert await edge_metric(site, edge, "engine_replica_rebuilds_total") == 1
        # The rebuilt replica holds the location: the master, which controls it, keeps it.
        assert (await site.get(edge.process, f"/api/systems/{edge.system_id}")).status_code == 200
        await room.watch.keeps(["master"], seconds=0.3)

        await site.post(f"/api/edges/{edge.id}/restore", {})
        await room.watch.wait_held_by("corrupt", timeout=5)

    assert_one_controller(sampler, "master", "edge")
    assert room.watch.owners() == ["corrupt", "master", "corrupt"], room.watch.connections
    assert room.device.max_concurrent == 1
    lines = [line for line in edge.process.log().splitlines() if "is corrupt" in line]
    assert len(lines) == 1 and "rebuilt from the master" in lines[0], lines


def assert_one_controller(sampler: ControllerSampler, first: str, then: str) -> None:
    """``first`` controls, then ``then``, each alone: never both, never neither (a
    handover's own gap apart: the old controller stops before the new one starts)."""
    assert sampler.samples, "the sampler took no samples"
    assert not sampler.doubled(), f"/controller 200 on both servers: {sampler.doubled()[:5]}"
    owners = ["master" if s[1] == 200 else "edge" if s[2] == 200 else None for s in sampler.samples]
    answered = [owner for owner, s in zip(owners, sampler.samples, strict=True) if 0 not in s[1:]]
    switch = answered.index(then) if then in answered else len(answered)
    before, after = answered[:switch], answered[switch:]
    assert set(before) <= {first, None} and set(after) <= {then, None}, answered
    gaps = [n for n, owner in enumerate(answered) if owner is None]
    assert all(switch - 3 <= n < switch for n in gaps), f"no controller at samples {gaps}"


# --- a background task that dies ------------------------------------------------------


async def test_a_dead_boot_task_makes_the_edge_unready_naming_it_and_logs_why(
    site: Site, rooms: Rooms
) -> None:
    room = await stopped_and_failed_over(rooms, "spoilt")
    edge = room.edge
    spoil_the_document(edge.process.workdir / "engine.db", b'"name":"spoilt"')

    await edge.process.start()

    async def dead() -> bool:
        edge.process.check_alive()
        try:
            response = await site.get(edge.process, "/api/ready")
        except httpx.HTTPError:
            return False  # not listening yet
        return response.status_code == 503 and "dead_tasks" in response.json()

    await wait_until(dead, timeout=15, message="the edge to report its dead boot task")
    response = await site.get(edge.process, "/api/ready")
    body = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [task["task"] for task in body["dead_tasks"]] == ["edge boot"], body
    assert "'edge boot'" in body["detail"] and "JSONDecodeError" in body["detail"], body
    assert await edge_metric(site, edge, "engine_tasks_dead") == 1
    log = edge.process.log()
    assert "background task 'edge boot' died" in log
    assert "Traceback (most recent call last)" in log, "logged with its traceback"
    # The edge never linked: the master keeps the location it failed over to.
    await room.watch.keeps(["master"], seconds=0.3)
    assert room.device.max_concurrent == 1


# --- a decision and its event -----------------------------------------------------------


async def recorded(database: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The edge's ControlState and its ControlEvents, oldest first, as a restarted master
    would find them."""
    async with opened(database) as store:
        state = await persisted_state(store, EDGE)
        events = list(reversed(await history(store, EDGE, 100)))
    return state or None, events


async def test_a_master_killed_between_any_two_writes_keeps_each_decision_with_its_event(
    tmp_path: Path,
) -> None:
    """SIGKILL right after each write the master's store commits in turn, the restore
    window's opening among them: what is left holds every decision with its event."""
    kill_after, survived = 1, False
    while not survived:
        database = tmp_path / f"killed-after-{kill_after}.db"
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.crashing_master",
            str(database),
            str(kill_after),
            cwd=CHECKOUT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(child.communicate(), timeout=60)
        survived = child.returncode == 0
        assert survived or child.returncode == -signal.SIGKILL, (child.returncode, out)
        state, events = await recorded(database)
        assert state is not None, "the first write is a decision's"
        newest = events[-1] if events else None
        assert newest is not None, f"killed after write {kill_after}: a state, no event"
        decided = (state["epoch"], state["controller"], state["reason"])
        logged = (newest["epoch"], newest["controller"], newest["reason"])
        assert decided == logged, f"killed after write {kill_after}: {decided} vs {logged}"
        kill_after += 1
    kinds = [event["kind"] for event in events]
    assert kinds == ["takeover", "restore", "disconnected", "takeover", "connected"], kinds
    print(f"\n[ha] every decision recorded with its event through {kill_after - 2} kills")
