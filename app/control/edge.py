"""The edge's side of control: when it runs its own modules.

The edge runs its modules when the master tells it to (a control message that is not
older than the last one it obeyed) or when it is disconnected: the link dropped, it
waited ``ENGINE_LINK_RETRY_S`` and the next attempt to reconnect failed without any
answer from the master, and the master's witness did not say the master runs them.
A failed attempt the master answered (its certificate not trusted, an HTTP answer, a
refused proof, a duplicate) proves the master alive: nobody takes control on that.
It stops them when the master says it controls the devices, over the link or through
its witness; when the master refused this process as a duplicate (another process of
the edge holds the link, and control follows it); and when the master, alive but out
of reach, is about to fail over (:func:`yield_due`). Between the drop and that failed
attempt the edge keeps doing what it did, so a short blip changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

from app.control.clock import as_utc
from app.control.state import Controller, Side


@dataclass(frozen=True)
class StartLocalModules:
    """Load the edge's modules and connect to its devices."""


@dataclass(frozen=True)
class StopLocalModules:
    """Stop the edge's modules and close their device connections."""


EdgeAction = StartLocalModules | StopLocalModules


@dataclass(frozen=True)
class EdgeTransition:
    """The edge's state after an event, and the actions to carry out."""

    state: EdgeControlState
    actions: tuple[EdgeAction, ...]


@dataclass(frozen=True)
class EdgeControlState:
    """What the edge knows about control of its own devices.

    ``controller`` is who runs them as far as the edge knows ("edge" exactly when its
    modules run); ``epoch`` is that of the last control message obeyed;
    ``link_lost_at`` is when the link to the master went (or, at boot, when the edge
    started without one); ``linked_since_boot`` whether the link has come up since.
    ``duplicate``: the master refused this process because another process of the edge
    held the link; it starts nothing until it is let in, or it would run beside that
    one as soon as the master is out of reach.
    """

    controller: Controller
    epoch: int
    link_up: bool
    link_lost_at: datetime | None
    linked_since_boot: bool = False
    duplicate: bool = False

    @classmethod
    def at_boot(cls, now: datetime) -> EdgeControlState:
        """A freshly booted edge: nothing running, no link yet."""
        return cls(controller="none", epoch=0, link_up=False, link_lost_at=as_utc(now))

    @property
    def modules_running(self) -> bool:
        """Whether the edge runs its modules (``devices_loaded`` in the link's hello)."""
        return self.controller == "edge"

    def unlinked_for(self, now: datetime) -> float:
        """For how long the master may have been without this edge's link, in seconds.

        Since the link went; before it first comes up after a boot, without bound: it
        went before this process started, and the master's failover timer may have
        been running since (README, "Rotation has a grace, and refusals are
        explained"). 0 while the link is up.
        """
        if self.link_up:
            return 0.0
        if not self.linked_since_boot or self.link_lost_at is None:
            return math.inf
        return (as_utc(now) - self.link_lost_at).total_seconds()

    def on_link_up(self) -> EdgeTransition:
        """The link to the master is up; control waits for the master's message."""
        linked = replace(
            self, link_up=True, link_lost_at=None, linked_since_boot=True, duplicate=False
        )
        return EdgeTransition(linked, ())

    def on_control(self, controller: Side, epoch: int) -> EdgeTransition:
        """The master says who controls the devices; a message older than the last is ignored."""
        if epoch < self.epoch:
            return EdgeTransition(self, ())
        obeyed = replace(self, controller=controller, epoch=epoch)
        return EdgeTransition(obeyed, self._switch(controller))

    def on_link_lost(self, now: datetime) -> EdgeTransition:
        """The link dropped: keep the current modules until a reconnect attempt fails."""
        if not self.link_up:
            return EdgeTransition(self, ())
        return EdgeTransition(replace(self, link_up=False, link_lost_at=as_utc(now)), ())

    def on_reconnect_failed(
        self, now: datetime, retry_s: float, *, master_alive: bool
    ) -> EdgeTransition:
        """An attempt to reconnect failed; after ``retry_s`` without a link, run locally.

        Not when ``master_alive``: the master answered (and refused), so it is no
        outage, and the master decides who runs the devices. Never while this process
        is a refused duplicate.
        """
        if self.link_up or self.link_lost_at is None or self.modules_running:
            return EdgeTransition(self, ())
        if master_alive or self.duplicate:
            return EdgeTransition(self, ())
        if (as_utc(now) - self.link_lost_at).total_seconds() < retry_s:
            return EdgeTransition(self, ())
        return EdgeTransition(replace(self, controller="edge"), (StartLocalModules(),))

    def on_master_controls(self) -> EdgeTransition:
        """With the link down, the master's witness proved the master runs the devices.

        The master wins: the edge stops its modules if it runs them, and does not
        start them while the master holds the devices.
        """
        if self.link_up:
            return EdgeTransition(self, ())
        actions: tuple[EdgeAction, ...] = (StopLocalModules(),) if self.modules_running else ()
        return EdgeTransition(replace(self, controller="master"), actions)

    def on_duplicate(self) -> EdgeTransition:
        """The master refused this process: another process of this edge holds the link.

        Control follows that link, so this process stops whatever it runs and starts
        nothing until it is let in itself.
        """
        if self.link_up:
            return EdgeTransition(self, ())
        actions: tuple[EdgeAction, ...] = (StopLocalModules(),) if self.modules_running else ()
        return EdgeTransition(replace(self, controller="none", duplicate=True), actions)

    def _switch(self, controller: Side) -> tuple[EdgeAction, ...]:
        if controller == "edge" and not self.modules_running:
            return (StartLocalModules(),)
        if controller == "master" and self.modules_running:
            return (StopLocalModules(),)
        return ()


def yield_due(
    now: datetime,
    *,
    unlinked_s: float,
    vouched_at: datetime | None,
    timeout: float,
    margin: float,
) -> bool:
    """Whether an edge whose master is alive but out of reach should let its devices go.

    The master fails over ``timeout`` after the edge's last sign of life: the link's
    loss, ``unlinked_s`` ago as far as the edge can tell (without bound before it first
    linked since its boot: :meth:`EdgeControlState.unlinked_for`), or the last time its
    witness asked this edge and heard "I control" (which holds the failover off). The
    edge yields ``margin`` before that moment, so the devices get a short gap rather
    than two controllers.
    """
    since_sign = unlinked_s
    if vouched_at is not None:
        since_sign = min(since_sign, (as_utc(now) - as_utc(vouched_at)).total_seconds())
    return since_sign >= timeout - margin
