"""Decisions the store refuses: carried out, reported as pending, recorded once it accepts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.control.state import ControlState, EdgePolicy, SupervisorState
from app.control.supervisor import LinkDown, TakeoverRequested
from app.master.recorder import RecordWriter, StoreRefused
from app.master.supervision import EdgeSupervisor, load_persisted
from app.services.control import StoreHealth, history
from app.store.base import Document, JsonObject, StoreUnavailable
from app.store.sqlite import SqliteStore
from tests.support.stores import opened_as
from tests.support.wait import wait_until
from tests.unit.master.test_supervision import EDGE, Master


class RefusingStore(SqliteStore):
    """A SQLite store whose writes fail while ``refusing`` is set, as on a full disk."""

    refusing = False

    async def upsert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        self._check()
        return await super().upsert(doc_id, doc_type, body)

    async def insert(self, doc_id: str, doc_type: str, body: JsonObject) -> Document:
        self._check()
        return await super().insert(doc_id, doc_type, body)

    async def upsert_many(self, docs: Any) -> list[Document]:
        self._check()
        return await super().upsert_many(docs)

    def _check(self) -> None:
        if self.refusing:
            raise StoreUnavailable("disk I/O error")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RefusingStore]:
    async with opened_as(RefusingStore, tmp_path / "engine.db") as store:
        yield store


def watched(store: SqliteStore, master: Master, health: StoreHealth, **control: Any) -> Any:
    now = datetime.now(UTC)
    state = ControlState.unknown(now)
    state = replace(state, **{"controller": "edge", "epoch": 4, "online": True, **control})
    policy = EdgePolicy(failover=True, timeout=0.05, window=None)
    return EdgeSupervisor(
        EDGE, SupervisorState(state, policy), store=store, handover=master, health=health
    )


async def test_a_failover_the_store_refuses_is_carried_out_and_recorded_later(
    store: RefusingStore,
) -> None:
    master, health = Master(), StoreHealth()
    supervisor = watched(store, master, health)

    await supervisor.handle(LinkDown(datetime.now(UTC)))  # recorded: epochs are reserved
    store.refusing = True
    await wait_until(lambda: bool(master.calls), timeout=2, message="the failover")

    assert supervisor.state.control.controller == "master", "the master runs the devices"
    assert master.calls == [("start", {})]
    pending = supervisor.unrecorded
    assert pending is not None and "master controls (epoch 5)" in pending.decision
    assert "store refuses writes (disk I/O error)" in pending.reason
    assert (health.writable, health.error) == (False, "disk I/O error")
    recorded = await load_persisted(store, EDGE)
    assert recorded is not None and recorded.controller == "edge", "the disconnect only"

    store.refusing = False
    await wait_until(lambda: supervisor.unrecorded is None, timeout=3, message="the record")
    persisted = await load_persisted(store, EDGE)
    assert persisted is not None and (persisted.controller, persisted.epoch) == ("master", 5)
    kinds = [event["kind"] for event in reversed(await history(store, EDGE, 10))]
    assert kinds == ["disconnected", "failover"]
    assert health.writable
    supervisor.close()


async def test_a_decision_beyond_the_recorded_epochs_waits_for_the_store(
    store: RefusingStore,
) -> None:
    master = Master()
    supervisor = watched(store, master, StoreHealth())  # nothing recorded: no epoch reserved
    store.refusing = True

    with pytest.raises(StoreRefused, match="waits for it"):
        await supervisor.handle(TakeoverRequested(datetime.now(UTC), by="ops"))

    assert supervisor.state.control.controller == "edge", "nothing was done"
    assert master.calls == []
    store.refusing = False
    await supervisor.handle(TakeoverRequested(datetime.now(UTC), by="ops"))
    assert (supervisor.state.control.controller, supervisor.state.control.epoch) == ("master", 5)
    supervisor.close()


async def test_a_failover_that_must_wait_for_the_store_is_tried_again(
    store: RefusingStore,
) -> None:
    master = Master()
    supervisor = watched(store, master, StoreHealth())  # nothing recorded: no epoch reserved
    store.refusing = True

    await supervisor.handle(LinkDown(datetime.now(UTC)))  # not recorded, but the timer runs
    assert supervisor.unrecorded is not None

    def failover_waiting() -> bool:
        waiting = supervisor.unrecorded
        return waiting is not None and waiting.decision.startswith("failover")

    await wait_until(failover_waiting, timeout=3, message="the failover to wait for the store")
    assert master.calls == [], "no epoch to take over with yet"
    assert supervisor.unrecorded is not None and "waits for it" in supervisor.unrecorded.reason
    store.refusing = False

    await wait_until(lambda: bool(master.calls), timeout=3, message="the failover after all")
    assert (supervisor.state.control.controller, supervisor.state.control.epoch) == ("master", 5)
    await wait_until(lambda: supervisor.unrecorded is None, timeout=3, message="the record")
    supervisor.close()


class CountingStore(SqliteStore):
    """Keeps the documents of each write transaction of ``upsert_many``, refused ones
    included; fails them while ``refusing``."""

    refusing = False

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.written: list[list[tuple[str, str]]] = []

    @property
    def transactions(self) -> int:
        return len(self.written)

    async def upsert_many(self, docs: Any) -> list[Document]:
        self.written.append([(doc_type, doc_id) for doc_id, doc_type, _ in docs])
        if self.refusing:
            raise StoreUnavailable("disk I/O error")
        return await super().upsert_many(docs)


@pytest.fixture
async def counting(tmp_path: Path) -> AsyncIterator[CountingStore]:
    async with opened_as(CountingStore, tmp_path / "engine.db") as store:
        yield store


async def test_the_writer_puts_concurrent_records_in_shared_transactions(
    counting: CountingStore,
) -> None:
    writer = RecordWriter(counting)
    await asyncio.gather(
        *(writer.write([(f"state::{n}", "control_state", {"n": n})]) for n in range(100))
    )
    assert counting.transactions == 1, "every write queued before the transaction shares it"
    assert (await counting.get("state::99")).body == {"n": 99}

    counting.refusing = True
    results = await asyncio.gather(
        *(writer.write([(f"state::{n}", "control_state", {})]) for n in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(result, StoreUnavailable) for result in results)


async def test_the_later_write_of_a_record_wins_within_a_transaction(
    counting: CountingStore,
) -> None:
    writer = RecordWriter(counting)
    first = asyncio.create_task(writer.write([("state::a", "control_state", {"v": 0})]))
    await asyncio.sleep(0)
    await asyncio.gather(
        writer.write([("state::a", "control_state", {"v": 1})]),
        writer.write([("state::a", "control_state", {"v": 2})]),
        first,
    )
    assert (await counting.get("state::a")).body == {"v": 2}


async def test_each_decision_writes_its_state_and_its_event_in_one_transaction(
    counting: CountingStore,
) -> None:
    supervisor = watched(counting, Master(), StoreHealth())
    await supervisor.handle(TakeoverRequested(datetime.now(UTC), by="ops"))
    await supervisor.handle(LinkDown(datetime.now(UTC)))
    for transaction in counting.written:
        kinds = sorted(doc_type for doc_type, _ in transaction)
        assert kinds == ["control_event", "control_state"], counting.written
    assert len(counting.written) == 2
    supervisor.close()


async def test_a_decision_refused_before_it_is_carried_out_leaves_no_event_behind(
    counting: CountingStore,
) -> None:
    supervisor = watched(counting, Master(), StoreHealth())
    counting.refusing = True
    with pytest.raises(StoreRefused):
        await supervisor.handle(TakeoverRequested(datetime.now(UTC), by="ops"))
    counting.refusing = False
    await supervisor.handle(LinkDown(datetime.now(UTC)))
    kinds = [event["kind"] for event in await history(counting, EDGE, 10)]
    assert kinds == ["disconnected"], "the refused takeover left no event of its own"
    supervisor.close()
