"""Many simulated edges in one process, each speaking the real control link.

``python -m bench.fleet_edge MASTER_URL EDGES_JSON`` reads ``[[edge_id, secret,
module_id, index], ...]`` and, on the ``connect`` command, runs one simulated edge per
entry, each connecting from its own loopback address (``source_address(index)``).
Each uses the edge's own link code: `app.edge.uplink.Uplink` connects (websockets,
no compression, pings every ``ENGINE_PING_INTERVAL_S``), runs the real handshake with
the edge's own secret and retries after a drop; the replica follows the master's
change feed with `app.edge.replica.fetch_changes` after every ``replica.changed``,
``CATCH_UP_SLOTS`` edges of a process at a time, and is kept in memory instead of
SQLite (a thousand SQLite files would each need a thread) as each document's version:
a real edge writes the bodies to its file, and five hundred edges holding every
location's documents as Python objects took 1.8 GiB a process and garbage-collection
pauses of seconds, in which no edge of the process answered its pings.
Each edge answers the master's ops (``ping``, ``control``, ``state.sync``, ``status``,
``exec``), announces its module's state on connect and pushes a status change every
``STATUS_EVERY_S`` seconds, as a location whose devices report now and then does.

The benchmark drives the process over stdin/stdout, one JSON object a line:

- ``{"cmd": "connect"}`` → ``{"event": "caught_up", "at": T, ...}`` once every edge
  has linked and applied the whole feed (``T``: ``time.monotonic()``, which every
  process on the machine shares);
- ``{"cmd": "mark"}`` then ``{"cmd": "await_advance"}`` → ``{"event": "advanced",
  "at": T}``, ``T`` when the last edge applied a change after the mark;
- ``{"cmd": "await_seq", "seq": S, "within": W}`` → ``{"event": "at_seq", "at": T}``
  once every replica holds the master's changes up to ``S``, or ``"at": null`` and how
  many replicas are ``behind`` after ``W`` seconds;
- ``{"cmd": "await_relinked", "since": T0}`` → ``{"event": "relinked", "at": T, ...}``
  once every edge has linked again after ``T0`` with the location in its control;
- ``{"cmd": "await_settled"}`` → ``{"event": "settled", ...}`` once every edge is
  linked with its location in its own control;
- ``{"cmd": "counts"}`` → the edges' counters.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from websockets.asyncio.client import connect

from app.edge import uplink
from app.edge.replica import fetch_changes
from app.edge.uplink import CurrentLink, HelloFacts, Uplink
from app.link import Control, Event, LinkConnection, LinkFailure, Welcome
from app.link.ops import (
    CACHE_EXPIRE,
    CONTROL,
    EXEC,
    MODEL_UPDATED,
    PING,
    STATE_SYNC,
    STATUS,
    Handler,
)
from app.settings import Settings
from bench.support import run

STATUS_EVERY_S = 10.0
BATCH = 1000
POLL_S = 0.02
#: Edges of one process catching up at once. Each edge reads and parses its batches
#: on this process's share of the machine's cores, where a real edge has a machine of
#: its own: five hundred edges parsing 250 KB batches together would keep this loop
#: from answering anyone's pings for seconds. Taking turns, they still answer in time,
#: and the master still sees every edge ask for every batch.
CATCH_UP_SLOTS = 16

_source_address: ContextVar[str | None] = ContextVar("source_address", default=None)


def source_address(index: int) -> str:
    """Edge ``index``'s own loopback address (127.1.0.1, 127.1.0.2, …), as sites have."""
    return f"127.1.{index // 250}.{index % 250 + 1}"


def _connect_from_own_address(uri: str, **options: Any) -> Any:
    """The uplink's ``connect``, from the address of the edge whose task calls it.

    The master throttles failed handshakes per peer address: a thousand edges on one
    address would stand for one site behind a NAT, not for a fleet.
    """
    address = _source_address.get()
    if address is not None:
        options["local_addr"] = (address, 0)
    return connect(uri, **options)


uplink.connect = _connect_from_own_address  # type: ignore[attr-defined,assignment]


class SimulatedEdge:
    """One location: an uplink, an in-memory replica, one module's status."""

    def __init__(
        self, settings: Settings, module_id: str, address: str, slots: asyncio.Semaphore
    ) -> None:
        self.module_id = module_id
        self._slots = slots
        self.address = address
        #: Each document's version, by id.
        self.replica: dict[str, str] = {}
        self.seq = 0
        self.seq_at = 0.0
        self.caught_up_at: float | None = None
        self.linked_at: float | None = None
        self.links = 0
        self.controller = "edge"
        #: Control orders that took the location's devices away from the edge.
        self.released = 0
        self.ops = 0
        self.events_sent = 0
        #: Changes received over the feed, all catch-ups together.
        self.changes_received = 0
        self._changed = asyncio.Event()
        self._power = False
        self.current = CurrentLink()
        self.uplink = Uplink(
            settings,
            current=self.current,
            handlers=self._handlers(),
            on_event=self._on_event,
            listener=self,
            boot_time=time.time(),
        )

    async def run(self) -> None:
        _source_address.set(self.address)  # this task's own context: its uplink's too
        await asyncio.gather(self.uplink.run_forever(), self._follow(), self._report())

    # --- UplinkListener ----------------------------------------------------------------

    def hello_facts(self) -> HelloFacts:
        return HelloFacts(devices_loaded=self.links > 0, replica_seq=self.seq, commit=None)

    async def connected(self, link: LinkConnection, welcome: Welcome, control: Control) -> None:
        self.controller = control.controller
        self.links += 1
        self.linked_at = time.monotonic()
        self._changed.set()  # catch up on every connect
        await self._send("module.state", module_id=self.module_id, state=self._state(), funcs={})

    async def disconnected(self, reason: str = "") -> None:
        pass

    async def attempt_failed(self, failure: LinkFailure) -> None:
        pass

    # --- the master's ops -----------------------------------------------------------------

    def _handlers(self) -> dict[str, Handler]:
        def op(answer: Callable[[dict[str, Any]], Any]) -> Handler:
            async def handler(args: dict[str, Any]) -> Any:
                self.ops += 1
                return answer(args)

            return handler

        return {
            PING.name: op(lambda args: {}),
            CONTROL.name: op(self._control),
            STATE_SYNC.name: op(lambda args: {}),
            STATUS.name: op(lambda args: {self.module_id: {"state": self._state(), "funcs": {}}}),
            EXEC.name: op(lambda args: args.get("args", [None])[0]),
            MODEL_UPDATED.name: op(lambda args: {"replica_seq": self.seq}),
            CACHE_EXPIRE.name: op(lambda args: {}),
        }

    def _control(self, args: dict[str, Any]) -> dict[str, Any]:
        controller = str(args["controller"])
        if self.controller == "edge" and controller != "edge":
            self.released += 1
        self.controller = controller
        status = {self.module_id: self._state()} if controller == "master" else {}
        return {"status": status, "controller": controller}

    def _on_event(self, event: Event) -> None:
        if event.event == "replica.changed":
            self._changed.set()

    def _state(self) -> dict[str, Any]:
        return {"connected": True, "power": self._power}

    # --- replication and status ----------------------------------------------------------

    async def _follow(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            link = self.current.link
            if link is None:
                continue
            try:
                async with self._slots:
                    await self._catch_up(link)
            except Exception:
                self._changed.set()
                await asyncio.sleep(0.5)

    async def _catch_up(self, link: LinkConnection) -> None:
        more = True
        while more:
            batch = await fetch_changes(link, self.seq, BATCH)
            self.changes_received += len(batch.changes)
            for change in batch.changes:
                if change.deleted:
                    self.replica.pop(change.id, None)
                else:
                    self.replica[change.id] = change.version
            if batch.last_seq != self.seq:
                self.seq, self.seq_at = batch.last_seq, time.monotonic()
            more = batch.more
        if self.caught_up_at is None:
            self.caught_up_at = time.monotonic()

    async def _report(self) -> None:
        await asyncio.sleep(random.uniform(0, STATUS_EVERY_S))
        while True:
            self._power = not self._power
            await self._send("status", module_id=self.module_id, name="power", value=self._power)
            await asyncio.sleep(STATUS_EVERY_S)

    async def _send(self, event: str, **fields: Any) -> None:
        link = self.current.link
        if link is None or link.closed:
            return
        try:
            await link.send_event(event, **fields)
            self.events_sent += 1
        except Exception:
            return


class Fleet:
    """The edges of this process and the commands the benchmark sends them."""

    def __init__(self, master_url: str, entries: list[list[str]]) -> None:
        slots = asyncio.Semaphore(CATCH_UP_SLOTS)
        self.edges = [
            SimulatedEdge(
                Settings(
                    _env_file=None,
                    edge_id=edge_id,
                    edge_secret=secret,
                    master_url=master_url,
                    link_retry_s=0.5,
                    ping_interval_s=1.0,
                ),
                module_id,
                source_address(int(index)),
                slots,
            )
            for edge_id, secret, module_id, index in entries
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._mark: list[int] = []

    async def serve(self) -> None:
        reader = await _stdin_reader()
        write({"event": "started", "edges": len(self.edges)})
        while line := await reader.readline():
            command = json.loads(line)
            await self.handle(command)

    async def handle(self, command: dict[str, Any]) -> None:
        match command["cmd"]:
            case "connect":
                self._tasks = [asyncio.create_task(edge.run()) for edge in self.edges]
                await until(lambda: all(e.caught_up_at is not None for e in self.edges))
                write(
                    {
                        "event": "caught_up",
                        "at": max(e.caught_up_at or 0.0 for e in self.edges),
                        "first_linked": min(e.linked_at or 0.0 for e in self.edges),
                        "documents": min(len(e.replica) for e in self.edges),
                    }
                )
            case "mark":
                self._mark = [edge.seq for edge in self.edges]
                write({"event": "marked"})
            case "await_advance":
                marks = self._mark
                await until(lambda: all(e.seq > m for e, m in zip(self.edges, marks, strict=True)))
                write({"event": "advanced", "at": max(e.seq_at for e in self.edges)})
            case "await_seq":
                seq = int(command["seq"])
                try:
                    async with asyncio.timeout(float(command["within"])):
                        await until(lambda: all(e.seq >= seq for e in self.edges))
                except TimeoutError:
                    behind = sum(1 for e in self.edges if e.seq < seq)
                    write({"event": "at_seq", "at": None, "behind": behind})
                else:
                    write({"event": "at_seq", "at": max(e.seq_at for e in self.edges)})
            case "await_relinked":
                since = float(command["since"])
                await until(
                    lambda: all(
                        (e.linked_at or 0.0) > since and e.controller == "edge" for e in self.edges
                    )
                )
                write({"event": "relinked", "at": max(e.linked_at or 0.0 for e in self.edges)})
            case "await_settled":
                await until(
                    lambda: all(e.current.connected and e.controller == "edge" for e in self.edges)
                )
                write({"event": "settled", **self.counts()})
            case "counts":
                write({"event": "counts", **self.counts()})

    def counts(self) -> dict[str, int]:
        return {
            "edges": len(self.edges),
            "linked": sum(1 for e in self.edges if e.current.connected),
            "links": sum(e.links for e in self.edges),
            "released": sum(e.released for e in self.edges),
            "ops": sum(e.ops for e in self.edges),
            "events_sent": sum(e.events_sent for e in self.edges),
            "changes_received": sum(e.changes_received for e in self.edges),
        }


async def until(condition: Callable[[], bool]) -> None:
    """Poll: the edges' own tasks make ``condition`` true, nothing signals it."""
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(POLL_S)


def write(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main(master_url: str, entries_file: str) -> None:
    with open(entries_file) as entries:
        fleet = Fleet(master_url, json.load(entries))
    gc.freeze()  # what lives as long as the process: no collection walks it again
    await fleet.serve()


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    run(main(sys.argv[1], sys.argv[2]))
