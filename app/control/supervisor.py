"""The master's per-edge supervisor: failover, restore and takeover as a pure state machine.

:func:`step` takes a :class:`~app.control.state.SupervisorState` and one event and
returns the next state with the actions the I/O layer executes, in order. Time comes
in with the events; nothing here sleeps, schedules or talks to anything.

Orders that matter, which the action sequences spell out:

* a decision is persisted and recorded before it is acted on (when the store refuses
  the write, the executor carries the decision out and records it later; epochs stay
  unique through the reservation in the persisted state, see ``next_epoch``);
* the old controller stops before the new one starts. On a handover to the edge the
  master stops its copies, hands their last status over, then tells the edge to start.
  On a takeover of a connected edge the master first tells the edge (``SendControl``
  is a request: the executor waits for the edge's answer), then hands the status over
  and starts its copies. When no answer comes, the executor closes the edge's link,
  drops the remaining actions and reports ``ControlUnconfirmed``: the master never
  starts beside an edge that may still run the devices;
* one failover timer per edge, mirroring ``failover_deadline``: ``StartFailoverTimer``
  replaces a pending one, ``CancelFailoverTimer`` comes whenever the deadline is
  dropped, and a timer that fires anyway (a race with the event that dropped it)
  changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, assert_never

from app.control.clock import as_utc
from app.control.negotiation import NegotiationInput, negotiate
from app.control.state import Controller, ControlState, EdgePolicy, Side, SupervisorState
from app.control.windows import RestoreWindow

# --- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Event:
    """Something that happened at ``now`` (any aware datetime; kept in UTC)."""

    now: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", as_utc(self.now))


@dataclass(frozen=True)
class LinkUp(_Event):
    """The edge connected and proved it knows the shared secret."""

    devices_loaded: bool
    master_booting: bool


@dataclass(frozen=True)
class LinkDown(_Event):
    """The edge's link dropped."""


@dataclass(frozen=True)
class EdgeAlive(_Event):
    """The edge's witness proved the edge controls its devices while its link is down.

    ``link_error`` is why the link was last refused or failed, if known. ``deaf``: the
    edge has kept saying so for longer than it takes to hear the master's witness,
    without asking it: it cannot learn that the master runs its devices. When the
    master holds them, it yields to such an edge, or both would run them for as long
    as the network stays one-way.
    """

    link_error: str | None = None
    deaf: bool = False


@dataclass(frozen=True)
class DuplicateRefused(_Event):
    """A second process authenticated as this edge while its link is alive, and was
    refused; recorded once per such process."""

    reason: str


@dataclass(frozen=True)
class FailoverTimerFired(_Event):
    """A failover timer reached its deadline."""


@dataclass(frozen=True)
class WindowOpened(_Event):
    """The edge's restore window opened."""


@dataclass(frozen=True)
class RestoreRequested(_Event):
    """An operator asked to hand control back to the edge."""

    by: str


@dataclass(frozen=True)
class TakeoverRequested(_Event):
    """An operator asked the master to take control (planned maintenance)."""

    by: str


@dataclass(frozen=True)
class ControlUnconfirmed(_Event):
    """The edge did not answer the control message of ``epoch``; its link was closed.

    Whether it obeyed is unknown, so the master acts as if the edge kept its devices:
    closed out, a disconnected edge runs them (DESIGN §5, "Edge disconnected").
    """

    epoch: int
    why: str


@dataclass(frozen=True)
class BootWaitOver(_Event):
    """The booting master stopped waiting for edges to connect."""


@dataclass(frozen=True)
class LocationCreated(_Event):
    """A location was created while the master runs: it awaits its edge from now on, as
    the boot awaits every edge, so an edge that never connects counts as one that failed."""


@dataclass(frozen=True)
class ConfigChanged(_Event):
    """The edge's configuration changed; it applies at once."""

    failover: bool
    timeout: float
    window: RestoreWindow | None


Event = (
    LinkUp
    | LinkDown
    | EdgeAlive
    | FailoverTimerFired
    | WindowOpened
    | RestoreRequested
    | TakeoverRequested
    | ControlUnconfirmed
    | BootWaitOver
    | LocationCreated
    | ConfigChanged
    | DuplicateRefused
)

# --- actions ------------------------------------------------------------------------


@dataclass(frozen=True)
class StartFailoverTimer:
    """Fire ``FailoverTimerFired`` at ``deadline``, replacing any pending timer."""

    deadline: datetime


@dataclass(frozen=True)
class CancelFailoverTimer:
    """Drop the pending failover timer."""


@dataclass(frozen=True)
class StopMasterModules:
    """Stop the master's copies of the edge's modules and close their device connections."""


@dataclass(frozen=True)
class TransferStatus:
    """Hand the last status of the edge's modules to the controller that starts next."""

    to: Side


@dataclass(frozen=True)
class StartMasterModules:
    """Start the master's copies of the edge's modules: devices, then services, then logic."""


@dataclass(frozen=True)
class SendControl:
    """Tell the edge who controls its devices now; it stops or starts its modules to match."""

    controller: Side
    epoch: int


EventKind = Literal[
    "created",
    "connected",
    "disconnected",
    "failover",
    "restore",
    "takeover",
    "resume",
    "config",
    "alive",
    "unconfirmed",
    "yield",
    "duplicate",
]


@dataclass(frozen=True)
class RecordEvent:
    """An entry of the edge's ControlEvent history; ``by`` names who asked, if anyone did."""

    kind: EventKind
    reason: str
    controller: Controller
    epoch: int
    at: datetime
    by: str | None = None


@dataclass(frozen=True)
class Persist:
    """Record a decision: the edge's ControlState and its ControlEvent, in one write.

    One action, so that no executor can write the state without its event: a crash
    between two writes would leave a decision without its history (README, "A
    decision and its event are one write").
    """

    control: ControlState
    event: RecordEvent


@dataclass(frozen=True)
class Reject:
    """Refuse the request: the API answers 409 with ``reason``."""

    reason: str


Action = (
    StartFailoverTimer
    | CancelFailoverTimer
    | StopMasterModules
    | TransferStatus
    | StartMasterModules
    | SendControl
    | Persist
    | Reject
)


@dataclass(frozen=True)
class Transition:
    """The state after an event, and the actions to carry out in this order."""

    state: SupervisorState
    actions: tuple[Action, ...]


# --- rules --------------------------------------------------------------------------


def step(state: SupervisorState, event: Event) -> Transition:
    """The next state of one edge's supervision after ``event``, and what to do about it."""
    match event:
        case LinkUp():
            return _on_link_up(state, event)
        case LinkDown():
            return _on_link_down(state, event.now)
        case EdgeAlive():
            return _on_edge_alive(state, event)
        case FailoverTimerFired():
            return _on_failover_timer(state, event.now)
        case WindowOpened():
            return _on_window_opened(state, event.now)
        case RestoreRequested():
            return _on_restore_requested(state, event)
        case TakeoverRequested():
            return _on_takeover_requested(state, event)
        case ControlUnconfirmed():
            return _on_control_unconfirmed(state, event)
        case BootWaitOver():
            return _on_boot_wait_over(state, event.now)
        case LocationCreated():
            return _on_location_created(state, event.now)
        case ConfigChanged():
            return _on_config_changed(state, event)
        case DuplicateRefused():
            # The decision stands (the holder keeps the link): its record goes with the
            # unchanged state, in one write like every other.
            control = state.control
            record = RecordEvent(
                "duplicate", event.reason, control.controller, control.epoch, event.now
            )
            return Transition(state, (Persist(control, record),))
        case _:
            assert_never(event)


def retry_after(state: SupervisorState, now: datetime) -> float | None:
    """Seconds until the pending failover (for ``Retry-After``); None when none is pending."""
    deadline = state.control.failover_deadline
    if deadline is None:
        return None
    return max(0.0, (deadline - as_utc(now)).total_seconds())


def _on_link_up(state: SupervisorState, event: LinkUp) -> Transition:
    control, now = state.control, event.now
    window = state.policy.window
    decision = negotiate(
        NegotiationInput(
            edge_devices_loaded=event.devices_loaded,
            inside_restore_window=window is not None and window.contains(now),
            master_booting=event.master_booting,
            master_has_control=control.controller == "master",
        )
    )
    cancel = _cancel_pending_timer(control)
    connected = replace(
        control,
        online=True,
        offline_since=None,
        edge_alive_at=None,
        failover_deadline=None,
        since=now,
        reason=f"edge connected: {decision.reason}",
    )
    if decision.controller == control.controller:
        return _decided(
            state, connected, "connected", *cancel, SendControl(decision.controller, control.epoch)
        )
    # The master only wins when it already has control, so a change goes to the edge.
    handed = _handed_over(connected, "edge", now, connected.reason)
    if control.controller == "master":
        # The edge's own status is newer when it runs its devices; a booting master's
        # copies never ran.
        keep_edge_status = event.devices_loaded or event.master_booting
        actions = _handover_to_edge(handed.epoch, transfer_status=not keep_edge_status)
    else:
        actions = (SendControl("edge", handed.epoch),)
    return _decided(state, handed, "connected", *cancel, *actions)


def _on_link_down(state: SupervisorState, now: datetime) -> Transition:
    control = state.control
    if not control.online:
        return _unchanged(state)
    offline = replace(control, online=False, offline_since=now, edge_alive_at=None)
    if control.controller == "master":
        kept = replace(offline, since=now, reason="edge disconnected; the master keeps control")
        return _decided(state, kept, "disconnected")
    return _await_edge(state, offline, now, "edge disconnected")


def _on_edge_alive(state: SupervisorState, event: EdgeAlive) -> Transition:
    """A sign of life from the edge's API: the failover waits ``timeout`` from it.

    When the master holds the devices, the edge runs them too: it stops them itself
    once it hears the master's witness, unless it cannot (``deaf``), and then the
    master stops its copies, as an edge with its devices loaded wins on reconnect
    (DESIGN §5).
    """
    control, now = state.control, event.now
    if control.online:
        return _unchanged(state)  # the link is back
    if control.controller == "master":
        return _yield_to_edge(state, event) if event.deaf else _unchanged(state)
    if control.failover_deadline is None:
        return _unchanged(state)  # no failover is pending
    deadline = now + timedelta(seconds=state.policy.timeout)
    alive = replace(control, failover_deadline=deadline, offline_since=now, edge_alive_at=now)
    if control.edge_alive_at is not None:
        # Already recorded: only the deadline moves.
        return Transition(replace(state, control=alive), (StartFailoverTimer(deadline),))
    why = event.link_error or "no reason known"
    held = replace(
        alive,
        since=now,
        reason=f"edge alive at its API, its link is down: {why}; the master holds off and "
        f"takes over {state.policy.timeout:g} s after the last sign of life",
    )
    return _decided(state, held, "alive", StartFailoverTimer(deadline))


def _yield_to_edge(state: SupervisorState, event: EdgeAlive) -> Transition:
    now, why = event.now, event.link_error or "no reason known"
    handed = _handed_over(
        state.control,
        "edge",
        now,
        f"the edge runs its devices while its link is down ({why}) and does not reach the "
        "master's witness: the master stopped its copies (an edge with its devices loaded "
        "wins, as on reconnect)",
    )
    alive = replace(handed, online=False, offline_since=now, edge_alive_at=now)
    if not state.policy.failover:
        return _decided(state, alive, "yield", StopMasterModules())
    deadline = now + timedelta(seconds=state.policy.timeout)
    pending = replace(alive, failover_deadline=deadline)
    return _decided(state, pending, "yield", StopMasterModules(), StartFailoverTimer(deadline))


def _on_boot_wait_over(state: SupervisorState, now: datetime) -> Transition:
    control = state.control
    if control.online or control.offline_since is not None:
        return _unchanged(state)  # it connected during the wait, or this already ran
    offline = replace(control, offline_since=now)
    if control.controller == "master":
        resumed = replace(
            offline,
            since=now,
            reason="the master held control before it restarted and the edge is not "
            "connected: the master resumes control",
        )
        return _decided(state, resumed, "resume", StartMasterModules())
    return _await_edge(state, offline, now, "edge did not connect while the master booted")


def _on_location_created(state: SupervisorState, now: datetime) -> Transition:
    control = state.control
    if control.online or control.offline_since is not None or control.controller != "none":
        return _unchanged(state)  # its edge connected first, or it is not new after all
    offline = replace(control, offline_since=now)
    what = "the location was created and its edge has not connected yet"
    return _await_edge(state, offline, now, what, kind="created")


def _on_failover_timer(state: SupervisorState, now: datetime) -> Transition:
    deadline = state.control.failover_deadline
    if deadline is None or now < deadline:
        return _unchanged(state)  # stale: the edge came back or the deadline moved
    return _fail_over(state, now)


def _on_window_opened(state: SupervisorState, now: datetime) -> Transition:
    control = state.control
    if control.controller != "master" or not control.online:
        return _unchanged(state)
    restored = _handed_over(
        control, "edge", now, "the restore window opened: control handed back to the edge"
    )
    return _decided(state, restored, "restore", *_handover_to_edge(restored.epoch))


def _on_restore_requested(state: SupervisorState, event: RestoreRequested) -> Transition:
    control = state.control
    if control.controller == "edge":
        return _unchanged(state)
    if not control.online:
        return Transition(
            state,
            (Reject("the edge is not connected: control can only go back to a connected edge"),),
        )
    restored = _handed_over(
        control, "edge", event.now, f"control handed back to the edge on request by {event.by}"
    )
    return _decided(state, restored, "restore", *_handover_to_edge(restored.epoch), by=event.by)


def _on_takeover_requested(state: SupervisorState, event: TakeoverRequested) -> Transition:
    control = state.control
    if control.controller == "master":
        return _unchanged(state)
    reason = f"the master took control on request by {event.by}"
    if not control.online:
        reason += " while the edge was disconnected"
    taken = _handed_over(control, "master", event.now, reason)
    return _decided(
        state,
        taken,
        "takeover",
        *_cancel_pending_timer(control),
        *_handover_to_master(taken.epoch, edge_connected=control.online),
        by=event.by,
    )


def _on_control_unconfirmed(state: SupervisorState, event: ControlUnconfirmed) -> Transition:
    """A takeover the edge did not confirm is undone: the master never starts beside an
    edge that may still run the devices. It waits for the edge like after any link loss
    (failover timer, witness). An unconfirmed handover *to* the edge needs nothing here:
    the edge's closed link is a ``LinkDown`` like any other.
    """
    control = state.control
    if event.epoch != control.epoch or control.controller != "master":
        return _unchanged(state)
    what = (
        f"the edge did not confirm that it let its devices go ({event.why}); its link was "
        "closed and its devices stay with it"
    )
    kept = _handed_over(control, "edge", event.now, what)
    offline = replace(kept, online=False, offline_since=event.now)
    return _await_edge(state, offline, event.now, what, kind="unconfirmed")


def _on_config_changed(state: SupervisorState, event: ConfigChanged) -> Transition:
    policy = EdgePolicy(failover=event.failover, timeout=event.timeout, window=event.window)
    updated = replace(state, policy=policy)
    control, now = updated.control, event.now
    awaiting_edge = not control.online and control.controller != "master"
    if not awaiting_edge or control.offline_since is None:
        return _unchanged(updated)
    if not policy.failover:
        if control.failover_deadline is None:
            return _unchanged(updated)
        cancelled = replace(
            control,
            failover_deadline=None,
            since=now,
            reason=f"failover was turned off: the master will not take over; {_stays(control)}",
        )
        return _decided(updated, cancelled, "config", CancelFailoverTimer())
    deadline = control.offline_since + timedelta(seconds=policy.timeout)
    if deadline == control.failover_deadline:
        return _unchanged(updated)
    if deadline <= now:
        return _fail_over(updated, now)
    rescheduled = replace(
        control,
        failover_deadline=deadline,
        since=now,
        reason=f"failover settings changed; {_takeover_notice(deadline)}",
    )
    return _decided(updated, rescheduled, "config", StartFailoverTimer(deadline))


# --- building blocks ----------------------------------------------------------------


def _await_edge(
    state: SupervisorState,
    offline: ControlState,
    now: datetime,
    what: str,
    *,
    kind: EventKind = "disconnected",
) -> Transition:
    """An edge the master does not control is away: start the failover timer, or say why not."""
    if not state.policy.failover:
        stays = replace(offline, since=now, reason=f"{what} and failover is off: {_stays(offline)}")
        return _decided(state, stays, kind)
    deadline = now + timedelta(seconds=state.policy.timeout)
    pending = replace(
        offline,
        failover_deadline=deadline,
        since=now,
        reason=f"{what}; {_takeover_notice(deadline)}",
    )
    return _decided(state, pending, kind, StartFailoverTimer(deadline))


def _fail_over(state: SupervisorState, now: datetime) -> Transition:
    taken = _handed_over(
        state.control,
        "master",
        now,
        f"the edge stayed disconnected for {state.policy.timeout:g} s: the master took over "
        "its devices",
        failover=True,
    )
    return _decided(
        state,
        taken,
        "failover",
        *_cancel_pending_timer(state.control),
        *_handover_to_master(taken.epoch, edge_connected=False),
    )


def _handed_over(
    control: ControlState, to: Side, now: datetime, reason: str, *, failover: bool = False
) -> ControlState:
    """``control`` after a change of controller: a new epoch, no pending failover."""
    return replace(
        control,
        controller=to,
        epoch=control.next_epoch,
        failover_active=failover,
        failover_time=now if failover else None,
        failover_deadline=None,
        edge_alive_at=None,
        since=now,
        reason=reason,
    )


def _handover_to_edge(epoch: int, *, transfer_status: bool = True) -> tuple[Action, ...]:
    """Stop the master's copies, hand their status over, then let the edge start."""
    transfer = (TransferStatus("edge"),) if transfer_status else ()
    return (StopMasterModules(), *transfer, SendControl("edge", epoch))


def _handover_to_master(epoch: int, *, edge_connected: bool) -> tuple[Action, ...]:
    """Stop the edge (when it can be told), take over its last status, then start."""
    stop_edge = (SendControl("master", epoch),) if edge_connected else ()
    return (*stop_edge, TransferStatus("master"), StartMasterModules())


def _cancel_pending_timer(control: ControlState) -> tuple[Action, ...]:
    return (CancelFailoverTimer(),) if control.failover_deadline is not None else ()


def _decided(
    state: SupervisorState,
    control: ControlState,
    kind: EventKind,
    *actions: Action,
    by: str | None = None,
) -> Transition:
    """Persist and record the new ``control`` first, then act on it."""
    record = RecordEvent(kind, control.reason, control.controller, control.epoch, control.since, by)
    return Transition(replace(state, control=control), (Persist(control, record), *actions))


def _unchanged(state: SupervisorState) -> Transition:
    return Transition(state, ())


def _stays(control: ControlState) -> str:
    """Where an away edge's devices are while nobody takes them over."""
    if control.controller == "none":
        return (
            "nobody runs its devices until its edge connects or the master takes it over "
            "(POST /api/edges/{id}/takeover, `engine ctl takeover`)"
        )
    return "its devices stay with the edge until it reconnects"


def _takeover_notice(deadline: datetime) -> str:
    return f"the master takes over at {deadline:%Y-%m-%d %H:%M:%S} UTC unless the edge reconnects"
