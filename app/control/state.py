"""The snapshot the master's per-edge supervisor reasons over.

:class:`ControlState` is what the master decided about one edge (persisted as that
edge's ControlState document); :class:`EdgePolicy` is the part of the edge's
EdgeControl document that steers the decisions. Both are immutable: every decision
produces a new snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from app.control.clock import as_utc
from app.control.windows import RestoreWindow

#: The two servers that can run an edge's modules.
Side = Literal["edge", "master"]
#: Who runs an edge's modules; "none" until the master has seen the edge.
Controller = Literal["edge", "master", "none"]


@dataclass(frozen=True)
class EdgePolicy:
    """How the master treats an edge's failures: the edge's configuration."""

    failover: bool
    timeout: float
    window: RestoreWindow | None

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"failover timeout must be positive, not {self.timeout:g}")


@dataclass(frozen=True)
class ControlState:
    """Who controls one edge's devices, as the master last decided, and why.

    ``since`` is when this state was entered and ``reason`` says why, in words an
    operator understands. ``epoch`` grows by one at every change of controller.
    ``failover_deadline`` is set only while a failover is pending; ``offline_since``
    is when the master stopped seeing the edge (a shorter timeout counts from it).
    ``epoch_floor`` is the highest epoch that may already have been handed out
    without being recorded (read back from the store's reservation at boot): the
    next change of controller takes an epoch above both it and ``epoch``.
    ``edge_alive_at`` is the last time the edge's witness said it controls its
    devices while its link was down (a sign of life that holds off a failover).
    """

    controller: Controller
    epoch: int
    online: bool
    failover_active: bool
    failover_time: datetime | None
    failover_deadline: datetime | None
    offline_since: datetime | None
    since: datetime
    reason: str
    epoch_floor: int = 0
    edge_alive_at: datetime | None = None

    @property
    def next_epoch(self) -> int:
        """The epoch of the next change of controller: never one handed out before."""
        return max(self.epoch, self.epoch_floor) + 1

    @classmethod
    def unknown(cls, now: datetime) -> ControlState:
        """The state of an edge the master has never decided about."""
        return cls(
            controller="none",
            epoch=0,
            online=False,
            failover_active=False,
            failover_time=None,
            failover_deadline=None,
            offline_since=None,
            since=as_utc(now),
            reason="the master has not yet seen this edge",
        )


#: Epochs reserved ahead of the recorded one: decisions made while the store refuses
#: writes take epochs from this block, and a restarted master starts above it.
EPOCH_RESERVE = 100


def control_document(control: ControlState) -> dict[str, object]:
    """The reported fields of a ControlState (instants as ISO 8601 UTC)."""
    return {
        "controller": control.controller,
        "epoch": control.epoch,
        "online": control.online,
        "failover_active": control.failover_active,
        "failover_time": _iso(control.failover_time),
        "since": _iso(control.since),
        "reason": control.reason,
    }


def persisted_document(control: ControlState) -> dict[str, object]:
    """What the store keeps of a ControlState: the reported fields and the epoch reservation."""
    return {**control_document(control), "epoch_reserved": control.epoch + EPOCH_RESERVE}


def control_from_document(body: Mapping[str, Any], now: datetime) -> ControlState:
    """A ControlState read back; links and timers are not persisted, so none is pending.

    Epochs up to the stored reservation may have gone out unrecorded before a restart,
    so the next change of controller takes one above it.
    """
    epoch = int(body.get("epoch", 0))
    return ControlState(
        controller=body.get("controller", "none"),
        epoch=epoch,
        online=bool(body.get("online", False)),
        failover_active=bool(body.get("failover_active", False)),
        failover_time=_parse(body.get("failover_time")),
        failover_deadline=None,
        offline_since=None,
        since=_parse(body.get("since")) or as_utc(now),
        reason=str(body.get("reason", "")),
        epoch_floor=max(epoch, int(body.get("epoch_reserved", epoch))),
    )


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment else None


def _parse(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


@dataclass(frozen=True)
class SupervisorState:
    """Everything the supervisor knows about one edge."""

    control: ControlState
    policy: EdgePolicy

    @classmethod
    def at_master_boot(
        cls, persisted: ControlState | None, policy: EdgePolicy, now: datetime
    ) -> SupervisorState:
        """The state a booting master starts from: the persisted decision, no link, no timer.

        Links and timers die with the process; the boot wait decides what to do about
        edges that do not connect (see ``BootWaitOver``).
        """
        if persisted is None:
            return cls(ControlState.unknown(now), policy)
        control = replace(persisted, online=False, failover_deadline=None, offline_since=None)
        return cls(control, policy)
