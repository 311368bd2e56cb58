"""The master's decision path for one edge, killed for real after its n-th store write.

``python -m tests.support.crashing_master DATABASE N`` runs the master's supervisor of
one edge (``EdgeSupervisor``, its recorder and record writer, the embedded store on
``DATABASE``) through a day of decisions — a takeover, the restore window opening, a
disconnection, a takeover while away, the edge back — and sends itself SIGKILL right
after the ``N``-th write the store committed, as a power cut or an OOM kill would
strike. It prints ``done`` when it lived through every decision. What the file holds
afterwards is what a restarted master would find.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.control.state import ControlState, EdgePolicy, SupervisorState
from app.control.supervisor import (
    Event,
    LinkDown,
    LinkUp,
    TakeoverRequested,
    WindowOpened,
)
from app.control.windows import RestoreWindow
from app.master.supervision import EdgeSupervisor
from app.store.base import Document, JsonObject
from app.store.sqlite import SqliteStore
from tests.unit.master.test_supervision import EDGE, Master


class KilledAfterWrites(SqliteStore):
    """The embedded store, whose process dies right after its ``kill_after``-th write."""

    def __init__(self, path: Path, kill_after: int) -> None:
        super().__init__(path)
        self._kill_after = kill_after
        self._writes = 0

    async def upsert_many(self, docs: Sequence[tuple[str, str, JsonObject]]) -> list[Document]:
        written = await super().upsert_many(docs)
        self._writes += 1
        if self._writes == self._kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return written


def decisions() -> list[Event]:
    """A day at one location, one decision per event, a minute apart."""
    start = datetime.now(UTC)
    at = [start + timedelta(minutes=n) for n in range(5)]
    return [
        TakeoverRequested(at[0], by="ops"),
        WindowOpened(at[1]),
        LinkDown(at[2]),
        TakeoverRequested(at[3], by="ops"),
        LinkUp(at[4], devices_loaded=False, master_booting=False),
    ]


async def main(database: Path, kill_after: int) -> None:
    store = KilledAfterWrites(database, kill_after)
    await store.open()
    now = datetime.now(UTC)
    control = replace(ControlState.unknown(now), controller="edge", epoch=4, online=True)
    window = RestoreWindow("* * * * *", 120)
    policy = EdgePolicy(failover=True, timeout=600, window=window)
    supervisor = EdgeSupervisor(
        EDGE, SupervisorState(control, policy), store=store, handover=Master()
    )
    for event in decisions():
        await supervisor.handle(event)
    supervisor.close()
    await store.close()
    print("done")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
