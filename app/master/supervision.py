"""Carry out the supervisor's decisions for one edge: timers, handovers, persistence.

The decisions are pure (:func:`app.control.supervisor.step`); this class only feeds it
events one at a time and executes the actions it returns, in order. The state it
reports becomes the new one once the actions are done; the records go through a
:class:`~app.master.recorder.DecisionRecorder`, which keeps what the store refuses
and writes it once the store takes writes again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from app.control.clock import now_utc
from app.control.state import ControlState, SupervisorState, control_from_document
from app.control.supervisor import (
    Action,
    CancelFailoverTimer,
    ControlUnconfirmed,
    Event,
    FailoverTimerFired,
    LinkUp,
    Persist,
    Reject,
    SendControl,
    StartFailoverTimer,
    StartMasterModules,
    StopMasterModules,
    TransferStatus,
    Transition,
    retry_after,
    step,
)
from app.errors import Conflict, Unavailable
from app.link import CloseCode, Control, LinkConnection
from app.link.ops import CONTROL, STATE_SYNC, ControlObeyed
from app.master.recorder import (
    MAX_RETRY_S,
    DecisionRecorder,
    RecordWriter,
    StoreRefused,
    Unrecorded,
)
from app.services.control import StoreHealth, control_id
from app.services.tasks import BackgroundTasks
from app.store.base import DocumentNotFound, Store

log = logging.getLogger(__name__)


class Handover(Protocol):
    """What a supervisor needs from the rest of the master to move an edge's devices."""

    def link(self, edge_id: str) -> LinkConnection | None: ...

    async def start_modules(self, edge_id: str, status: Mapping[str, Any]) -> None: ...

    async def stop_modules(self, edge_id: str) -> dict[str, dict[str, Any]]: ...

    def mirrored_status(self, edge_id: str) -> dict[str, dict[str, Any]]: ...

    def control_changed(self, edge_id: str, state: ControlState) -> None: ...


@dataclass
class _Handoff:
    """Status travelling from the old controller to the new one within one transition."""

    status: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Unconfirmed(Exception):
    """The edge did not answer a control message; its link is closed."""

    def __init__(self, epoch: int, why: str) -> None:
        super().__init__(why)
        self.epoch = epoch
        self.why = why


@dataclass(frozen=True)
class _AwaitingLink:
    """The part of an admission that needs the edge's link, made at ``epoch``."""

    epoch: int
    actions: tuple[Action, ...]
    handoff: _Handoff


class EdgeSupervisor:
    """Feeds one edge's events to the pure supervisor and executes its actions."""

    def __init__(
        self,
        edge_id: str,
        state: SupervisorState,
        *,
        store: Store,
        handover: Handover,
        health: StoreHealth | None = None,
        writer: RecordWriter | None = None,
        tasks: BackgroundTasks | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.edge_id = edge_id
        self.state = state
        self._tasks = tasks or BackgroundTasks()
        self._recorder = DecisionRecorder(
            edge_id,
            writer or RecordWriter(store),
            health or StoreHealth(),
            self._tasks,
            epoch=state.control.epoch,
            reserved=state.control.epoch_floor,
            clock=clock,
        )
        self._handover = handover
        self._clock = clock
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._awaiting_link: _AwaitingLink | None = None
        #: A failover that needs the store before it can be carried out.
        self._waiting: Unrecorded | None = None

    async def handle(self, event: Event) -> Transition:
        """Decide on ``event`` and carry the decision out before the next event.

        Raises StoreRefused when the decision needs a record first and the store
        refuses it: then nothing was done and the state is unchanged.
        """
        async with self._lock:
            transition = step(self.state, event)
            try:
                await self._execute(transition.actions, _Handoff(), transition.state)
            except _Unconfirmed as exc:
                await self._unconfirmed(exc)
                raise Unavailable(
                    f"edge {self.edge_id!r} did not confirm the change of controller: "
                    f"{self.state.control.reason}",
                    retry_after=retry_after(self.state, self._clock()),
                ) from None
            return transition

    async def admit(self, event: LinkUp) -> Control:
        """Decide on a connecting edge; returns the control frame of its handshake.

        The actions up to the first that needs the link run now. When that one is a
        control message, the handshake carries it. When status must reach the edge
        first (a handover from the master), the handshake still names the master,
        and the status and the handover follow as requests once the link serves them
        (:meth:`linked`): the edge starts only after the master stopped and the
        status arrived.
        """
        async with self._lock:
            before = self.state.control
            transition = step(self.state, event)
            actions, handoff = transition.actions, _Handoff()
            split = next((i for i, a in enumerate(actions) if _needs_link(a)), len(actions))
            await self._execute(actions[:split], handoff, transition.state)
            reason = self.state.control.reason
            self._awaiting_link = None
            first = actions[split] if split < len(actions) else None
            if isinstance(first, SendControl):
                await self._execute(actions[split + 1 :], handoff, transition.state)
                return Control(controller=first.controller, epoch=first.epoch, reason=reason)
            self._awaiting_link = _AwaitingLink(self.state.control.epoch, actions[split:], handoff)
            return Control(controller=before.controller, epoch=before.epoch, reason=reason)

    async def linked(self) -> None:
        """The admitted edge's link serves requests: carry out what waited for it.

        Dropped when a newer decision came in between (its epoch moved on).
        """
        async with self._lock:
            awaiting, self._awaiting_link = self._awaiting_link, None
            if awaiting is None or awaiting.epoch != self.state.control.epoch:
                return
            try:
                await self._execute(awaiting.actions, awaiting.handoff, self.state)
            except _Unconfirmed as exc:
                await self._unconfirmed(exc)

    @property
    def unrecorded(self) -> Unrecorded | None:
        """A decision the store has not taken yet: carried out, or waiting for it."""
        return self._waiting or self._recorder.unrecorded

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._recorder.close()

    async def _execute(
        self, actions: tuple[Action, ...], handoff: _Handoff, after: SupervisorState
    ) -> None:
        """Carry ``actions`` out; the state becomes ``after`` once they are done.

        The record is written first when the store takes it; when it refuses, the
        decision is carried out all the same and recorded later (see
        :class:`DecisionRecorder`), unless it needs an epoch the store has not reserved.
        """
        try:
            for action in actions:
                match action:
                    case Persist(control=control, event=event):
                        await self._recorder.save(control, event)
                        self._handover.control_changed(self.edge_id, control)
                    case StartFailoverTimer(deadline=deadline):
                        self._arm(deadline)
                    case CancelFailoverTimer():
                        self._disarm()
                    case StopMasterModules():
                        handoff.status = await self._handover.stop_modules(self.edge_id)
                    case TransferStatus(to="edge"):
                        await self._sync_state(handoff.status)
                    case TransferStatus(to="master"):
                        if not handoff.status:
                            handoff.status = self._handover.mirrored_status(self.edge_id)
                    case StartMasterModules():
                        await self._handover.start_modules(self.edge_id, handoff.status)
                    case SendControl(controller=controller, epoch=epoch):
                        reply = await self._send_control(controller, epoch)
                        if controller == "master" and isinstance(reply, dict):
                            handoff.status = reply.get("status") or {}
                    case Reject(reason=reason):
                        raise Conflict(reason)
        except (StoreRefused, Conflict):
            raise  # nothing was done: the state stays
        except _Unconfirmed:
            self.state = after  # the caller decides on it at once (ControlUnconfirmed)
            raise
        except BaseException:
            self.state = after  # what was done stays done; the next event starts from it
            raise
        self.state = after

    async def _send_control(self, controller: str, epoch: int) -> ControlObeyed:
        """Tell the edge who controls now and return its answer.

        Raises _Unconfirmed, after closing the link, when the edge does not answer (or
        its link is gone): it may or may not have obeyed, and only a closed link makes
        its side certain (a disconnected edge runs its devices).
        """
        link = self._handover.link(self.edge_id)
        if link is None:  # gone since the decision: the edge runs its devices, disconnected
            raise _Unconfirmed(epoch, "its link had closed")
        try:
            return await CONTROL.call(link, {"controller": controller, "epoch": epoch})
        except Exception as exc:
            log.warning(
                "edge %s did not confirm control by %s: closing its link", self.edge_id, controller
            )
            await link.close(CloseCode.UNRESPONSIVE, "control not confirmed")
            raise _Unconfirmed(epoch, str(exc) or type(exc).__name__) from exc

    async def _unconfirmed(self, exc: _Unconfirmed) -> None:
        """Decide on a control message the edge did not answer (its link is closed)."""
        transition = step(self.state, ControlUnconfirmed(self._clock(), exc.epoch, exc.why))
        await self._execute(transition.actions, _Handoff(), transition.state)

    async def _sync_state(self, status: dict[str, dict[str, Any]]) -> None:
        link = self._handover.link(self.edge_id)
        if link is None:
            return
        try:
            await STATE_SYNC.call(link, {"status": status})
        except Exception as exc:  # the edge's side follows from the next negotiation
            log.warning("edge %s did not take %s: %s", self.edge_id, STATE_SYNC.name, exc)

    def _arm(self, deadline: datetime) -> None:
        self._disarm()
        self._timer = self._tasks.spawn(
            self._fire_at(deadline), name=f"failover timer of edge {self.edge_id}", forever=False
        )

    def _disarm(self) -> None:
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        self._timer = None

    async def _fire_at(self, deadline: datetime) -> None:
        await asyncio.sleep(max(0.0, (deadline - self._clock()).total_seconds()))
        self._timer = None
        # The sleep runs on the monotonic clock, which may run ahead of the wall clock:
        # the deadline has come even when the wall clock still reads a little before it.
        now = max(self._clock(), deadline)
        try:
            await self.handle(FailoverTimerFired(now))
        except StoreRefused as exc:
            log.error("failover of edge %s waits for the store: %s", self.edge_id, exc)
            if self._waiting is None:
                self._waiting = Unrecorded("failover: the master takes over", str(exc), now)
            if self._timer is None and self.state.control.failover_deadline is not None:
                self._arm(self._clock() + timedelta(seconds=MAX_RETRY_S))
            return
        except Exception:
            log.exception("failover of edge %s failed", self.edge_id)
        self._waiting = None


def _needs_link(action: Action) -> bool:
    """Whether carrying ``action`` out means talking to the edge."""
    return isinstance(action, SendControl) or action == TransferStatus("edge")


async def load_persisted(store: Store, edge_id: str) -> ControlState | None:
    """The ControlState the master last wrote for ``edge_id``, if any."""
    try:
        doc = await store.get(control_id(edge_id))
    except DocumentNotFound:
        return None
    return control_from_document(doc.body, now_utc())
