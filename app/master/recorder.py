"""Record one edge's control decisions in the store, retrying until the store takes them.

A decision is carried out whether or not the store takes its record at once (the
master runs what it decided); what the store refused is written as soon as it
accepts writes again, retried with backoff, newest ControlState first and then the
events in order. Epochs stay unique across restarts because every recorded
ControlState reserves a block of epochs ahead (``EPOCH_RESERVE``): a decision may
only use an epoch inside the recorded reservation, and a restarted master starts
above it. A decision that would need an epoch beyond it waits for the store.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.control.clock import now_utc
from app.control.state import EPOCH_RESERVE, ControlState, persisted_document
from app.control.supervisor import RecordEvent
from app.services.control import StoreHealth, control_id
from app.services.tasks import BackgroundTasks
from app.store.base import JsonObject, Store, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

#: Seconds between attempts to write what the store refused: doubling up to the cap.
FIRST_RETRY_S = 0.1
MAX_RETRY_S = 1.0


class RecordWriter:
    """Writes the records of every edge's decisions, many to one transaction.

    A thousand edges reconnecting after a master restart, or failing over together,
    each record a ControlState and a ControlEvent: one transaction per record made the
    store the bottleneck. A write waits for the transaction in flight, and every write
    that arrived meanwhile goes into the next one (group commit): no delay is added
    when the store is idle. A failed transaction fails every write in it.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: list[tuple[list[tuple[str, str, JsonObject]], asyncio.Future[None]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def write(self, docs: list[tuple[str, str, JsonObject]]) -> None:
        """Upsert ``docs`` in the next transaction; raises the store's StoreError."""
        done = asyncio.get_running_loop().create_future()
        self._queue.append((docs, done))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        await asyncio.shield(done)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            newest: dict[str, tuple[str, str, JsonObject]] = {}
            for docs, _ in batch:
                for doc in docs:
                    newest[doc[0]] = doc  # the later write of an id wins
            try:
                await self._store.upsert_many(list(newest.values()))
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


class StoreRefused(StoreUnavailable):
    """A decision needs a record the store refused; it was not carried out."""


@dataclass(frozen=True)
class Unrecorded:
    """A decision carried out but not yet in the store, and why."""

    decision: str
    reason: str
    since: datetime

    def as_json(self) -> dict[str, str]:
        return {"decision": self.decision, "reason": self.reason, "since": self.since.isoformat()}


class DecisionRecorder:
    """Writes one edge's ControlState and ControlEvents; keeps what failed until it is written."""

    def __init__(
        self,
        edge_id: str,
        writer: RecordWriter,
        health: StoreHealth,
        tasks: BackgroundTasks,
        *,
        epoch: int,
        reserved: int,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._edge_id = edge_id
        self._writer = writer
        self._health = health
        self._tasks = tasks
        self._clock = clock
        self._control: ControlState | None = None
        #: Events not yet recorded, each with the id it keeps through every retry.
        self._events: list[tuple[str, RecordEvent]] = []
        self._lock = asyncio.Lock()
        self._retry: asyncio.Task[None] | None = None
        self._unrecorded_since: datetime | None = None
        #: Epochs up to this one are covered by a reservation the store holds.
        self.reserved = reserved
        #: The newest epoch handed out (a decision that keeps it needs no new one).
        self._epoch = epoch

    @property
    def unrecorded(self) -> Unrecorded | None:
        """The newest decision the store has not taken yet, if any."""
        if self._unrecorded_since is None or (self._control is None and not self._events):
            return None
        if self._control is not None:
            control = self._control
            decision = f"{control.controller} controls (epoch {control.epoch}): {control.reason}"
        else:
            decision = self._events[-1][1].reason if self._events else "history entries"
        reason = (
            f"carried out but not yet recorded: the store refuses writes "
            f"({self._health.error or 'unknown error'}); retried every {MAX_RETRY_S:g} s at most"
        )
        return Unrecorded(decision, reason, self._unrecorded_since)

    async def save(self, control: ControlState, event: RecordEvent) -> None:
        """Record ``control`` and its ``event`` in one write, now or later; raises
        StoreRefused only when the decision must wait.

        The state and the event always travel in the same transaction, so the store
        never holds one without the other. A decision whose epoch lies beyond the
        recorded reservation is recorded first: when that write fails the decision
        must not be carried out.
        """
        previous, self._control = self._control, control
        self._events.append((self._event_id(event), event))
        if control.epoch > max(self.reserved, self._epoch) and not await self._flush():
            self._control = previous
            self._events.pop()
            raise StoreRefused(
                f"the store refuses writes ({self._health.error}): the decision waits for "
                "it (no epoch left in the recorded reservation)"
            )
        self._epoch = max(self._epoch, control.epoch)
        await self._flush()

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()

    async def _flush(self) -> bool:
        """Write what is waiting; True when nothing is left. Schedules a retry otherwise."""
        async with self._lock:
            control, events = self._control, list(self._events)
            docs: list[tuple[str, str, JsonObject]] = []
            if control is not None:
                body = {"edge_id": self._edge_id, **persisted_document(control)}
                docs.append((control_id(self._edge_id), "control_state", body))
            docs += [(event_id, "control_event", self._event_body(e)) for event_id, e in events]
            try:
                if docs:
                    await self._writer.write(docs)
                if control is not None:
                    self.reserved = max(self.reserved, control.epoch + EPOCH_RESERVE)
                    if self._control is control:
                        self._control = None
                del self._events[: len(events)]
            except StoreError as exc:
                self._failed(exc)
                return False
            self._health.succeeded()
            if self._unrecorded_since is not None:
                log.info("edge %s: the store took the decisions it had refused", self._edge_id)
            self._unrecorded_since = None
            return True

    def _failed(self, exc: StoreError) -> None:
        self._health.failed(str(exc), self._clock())
        if self._unrecorded_since is None:
            self._unrecorded_since = self._clock()
            log.error(
                "edge %s: the store refused a control decision (%s): carried out, "
                "recorded once the store takes writes again",
                self._edge_id,
                exc,
            )
        if self._retry is None or self._retry.done():
            self._retry = self._tasks.spawn(
                self._retry_until_recorded(),
                name=f"recording the decisions of edge {self._edge_id}",
                forever=False,
            )

    async def _retry_until_recorded(self) -> None:
        delay = FIRST_RETRY_S
        while True:
            await asyncio.sleep(delay)
            if await self._flush():
                return
            delay = min(MAX_RETRY_S, delay * 2)

    def _event_id(self, event: RecordEvent) -> str:
        stamp = event.at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")
        return f"evt::{self._edge_id}::{stamp}::{secrets.token_hex(3)}"

    def _event_body(self, event: RecordEvent) -> JsonObject:
        return {
            "edge_id": self._edge_id,
            "at": event.at.astimezone(UTC).isoformat(),
            "kind": event.kind,
            "controller": event.controller,
            "epoch": event.epoch,
            "reason": event.reason,
            "by": event.by,
        }
