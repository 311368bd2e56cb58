"""Replica catch-up against the store's raw insert rate (figure 7).

For each size the master, a ``python -m app serve`` process, starts over a SQLite file
seeded with that many documents (users of a large estate, about 300 bytes each). An
edge location is created over REST, and this process links to the master as that
edge with the edge's own code: `app.edge.uplink.Uplink` (real handshake, its secret)
and `app.edge.replica.Replicator` writing into an empty `SqliteStore`, as an edge
booting for the first time does. Catch-up runs from the link being up to the last
batch applied.

The raw insert rate is the same store's ``insert_many`` of the same documents into an
empty file, in batches of the size the replica asks for (1,000), in this process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from app.edge.replica import BATCH, Replicator
from app.edge.uplink import CurrentLink, HelloFacts, Uplink
from app.link import Control, LinkConnection, LinkFailure, Welcome
from app.link.ops import PING
from app.node_process import NodeProcess, free_port
from app.settings import Settings
from app.store.base import JsonObject
from app.store.sqlite import SqliteStore
from bench.fleet import seed
from bench.report import Target
from bench.support import AUTH, TOKEN, started

RATIO_LIMIT = 0.5


def documents(count: int) -> list[tuple[str, str, JsonObject]]:
    return [
        (
            f"user-{n:07d}",
            "user",
            {
                "name": f"Operator {n}",
                "email": f"operator{n}@estate.example",
                "role": "operator",
                "sites": [f"edge-{n % 1000:05d}", f"edge-{(n * 7) % 1000:05d}"],
                "preferences": {"theme": "dark", "language": "en", "timezone": "Europe/Zurich"},
                "note": "seeded by the replication benchmark" + "." * (n % 40),
            },
        )
        for n in range(count)
    ]


class CatchUp:
    """The edge's uplink, catching its empty replica up once linked."""

    def __init__(self, settings: Settings, replica: Replicator) -> None:
        self.replica = replica
        self.done: asyncio.Future[tuple[float, float, int]] = (
            asyncio.get_running_loop().create_future()
        )
        self.uplink = Uplink(
            settings,
            current=CurrentLink(),
            handlers={PING.name: _pong},
            on_event=lambda event: None,
            listener=self,
            boot_time=time.time(),
        )

    def hello_facts(self) -> HelloFacts:
        return HelloFacts(devices_loaded=False, replica_seq=self.replica.seq, commit=None)

    async def connected(self, link: LinkConnection, welcome: Welcome, control: Control) -> None:
        if self.done.done():
            return
        asyncio.get_running_loop().create_task(self._catch_up(link))

    async def _catch_up(self, link: LinkConnection) -> None:
        started = time.perf_counter()
        try:
            received = await self.replica.catch_up(link)
        except Exception as exc:
            self.done.set_exception(exc)
            return
        self.done.set_result((started, time.perf_counter(), received))

    async def disconnected(self, reason: str = "") -> None:
        pass

    async def attempt_failed(self, failure: LinkFailure) -> None:
        pass


async def _pong(args: dict[str, Any]) -> dict[str, Any]:
    return {}


async def raw_insert_rate(path: Path, docs: Sequence[tuple[str, str, JsonObject]]) -> float:
    store = SqliteStore(path)
    await store.open()
    try:
        started = time.perf_counter()
        for first in range(0, len(docs), BATCH):
            await store.insert_many(docs[first : first + BATCH])
        return len(docs) / (time.perf_counter() - started)
    finally:
        await store.close()


async def catch_up_once(workdir: Path, count: int, timeout: float) -> dict[str, Any]:
    workdir.mkdir(parents=True)
    docs = documents(count)
    await seed(workdir / "engine.db", docs)
    master = NodeProcess(
        "master", workdir, free_port(), {"ENGINE_ADMIN_TOKEN": TOKEN, "ENGINE_BOOT_WAIT_S": "0"}
    )
    await started(master)
    try:
        async with httpx.AsyncClient(base_url=master.url, headers=AUTH, timeout=30) as http:
            response = await http.post("/api/edges", json={"name": "Replica site"})
            response.raise_for_status()
            edge = response.json()
        store = SqliteStore(workdir / "edge.db")
        await store.open()
        try:
            replica = Replicator(store)
            await replica.open()
            settings = Settings(
                _env_file=None,
                edge_id=edge["id"],
                edge_secret=edge["secret"],
                master_url=master.url,
                link_retry_s=0.5,
            )
            catch_up = CatchUp(settings, replica)
            linking = asyncio.create_task(catch_up.uplink.run_forever())
            try:
                began, ended, received = await asyncio.wait_for(catch_up.done, timeout)
            finally:
                linking.cancel()
                await asyncio.gather(linking, return_exceptions=True)
            held = len((await store.find("user", limit=count + 10)).items)
        finally:
            await store.close()
    finally:
        await master.stop()
    raw = await raw_insert_rate(workdir / "raw.db", docs)
    seconds = ended - began
    return {
        "documents": count,
        "received": received,
        "held": held,
        "catch_up_s": round(seconds, 3),
        "catch_up_per_s": round(received / seconds, 1),
        "raw_insert_per_s": round(raw, 1),
        "ratio": round(received / seconds / raw, 4),
    }


async def measure(workdir: Path, sizes: Sequence[int], *, timeout: float) -> dict[str, Any]:
    runs = [await catch_up_once(workdir / f"replica-{n}", n, timeout) for n in sizes]
    return {
        "batch": BATCH,
        "summary": {str(run["documents"]): run for run in runs},
        "runs": runs,
        "targets": [
            Target(
                f"replica catch-up / raw insert rate, {run['documents']:,} documents",
                run["ratio"] if run["held"] >= run["documents"] else None,
                RATIO_LIMIT,
                "x",
                at_most=False,
            ).as_json()
            for run in runs
        ],
    }
