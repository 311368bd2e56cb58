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
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.control.clock import now_utc
from app.control.state import EPOCH_RESERVE, ControlState, persisted_document
from app.control.supervisor import RecordEvent
from app.services.control import StoreHealth, control_id
from app.store.base import DocumentExists, Store, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

#: Seconds between attempts to write what the store refused: doubling up to the cap.
FIRST_RETRY_S = 0.1
MAX_RETRY_S = 1.0


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
        store: Store,
        health: StoreHealth,
        *,
        epoch: int,
        reserved: int,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._edge_id = edge_id
        self._store = store
        self._health = health
        self._clock = clock
        self._control: ControlState | None = None
        self._events: list[RecordEvent] = []
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
            decision = self._events[-1].reason if self._events else "history entries"
        reason = (
            f"carried out but not yet recorded: the store refuses writes "
            f"({self._health.error or 'unknown error'}); retried every {MAX_RETRY_S:g} s at most"
        )
        return Unrecorded(decision, reason, self._unrecorded_since)

    async def save(self, control: ControlState) -> None:
        """Record ``control``, now or later; raises StoreRefused only when it must wait.

        A decision whose epoch lies beyond the recorded reservation is recorded first:
        when that write fails the decision must not be carried out.
        """
        previous, self._control = self._control, control
        if control.epoch > max(self.reserved, self._epoch) and not await self._flush():
            self._control = previous
            raise StoreRefused(
                f"the store refuses writes ({self._health.error}): the decision waits for "
                "it (no epoch left in the recorded reservation)"
            )
        self._epoch = max(self._epoch, control.epoch)
        await self._flush()

    async def append(self, event: RecordEvent) -> None:
        """Add to the edge's history, now or as soon as the store takes it."""
        self._events.append(event)
        await self._flush()

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()

    async def _flush(self) -> bool:
        """Write what is waiting; True when nothing is left. Schedules a retry otherwise."""
        async with self._lock:
            try:
                if self._control is not None:
                    control = self._control
                    await self._store.upsert(
                        control_id(self._edge_id),
                        "control_state",
                        {"edge_id": self._edge_id, **persisted_document(control)},
                    )
                    self.reserved = max(self.reserved, control.epoch + EPOCH_RESERVE)
                    if self._control is control:
                        self._control = None
                while self._events:
                    with contextlib.suppress(DocumentExists):  # written, but the answer was lost
                        await self._insert(self._events[0])
                    self._events.pop(0)
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
            self._retry = asyncio.get_running_loop().create_task(self._retry_until_recorded())

    async def _retry_until_recorded(self) -> None:
        delay = FIRST_RETRY_S
        while True:
            await asyncio.sleep(delay)
            if await self._flush():
                return
            delay = min(MAX_RETRY_S, delay * 2)

    async def _insert(self, event: RecordEvent) -> None:
        at = event.at.astimezone(UTC)
        stamp = at.strftime("%Y%m%dT%H%M%S.%f")
        event_id = f"evt::{self._edge_id}::{stamp}::{secrets.token_hex(3)}"
        await self._store.insert(
            event_id,
            "control_event",
            {
                "edge_id": self._edge_id,
                "at": at.isoformat(),
                "kind": event.kind,
                "controller": event.controller,
                "epoch": event.epoch,
                "reason": event.reason,
                "by": event.by,
            },
        )
