"""The acceptance scenarios of high availability, as event sequences through both sides."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from app.control.edge import EdgeControlState, EdgeTransition
from app.control.state import EdgePolicy, SupervisorState
from app.control.supervisor import (
    Action,
    BootWaitOver,
    CancelFailoverTimer,
    ConfigChanged,
    Event,
    FailoverTimerFired,
    LinkDown,
    LinkUp,
    Persist,
    RecordEvent,
    Reject,
    RestoreRequested,
    SendControl,
    StartFailoverTimer,
    StartMasterModules,
    StopMasterModules,
    TakeoverRequested,
    TransferStatus,
    WindowOpened,
    retry_after,
    step,
)
from app.control.windows import RestoreWindow

T0 = datetime(2024, 6, 5, 12, tzinfo=UTC)
RETRY_S = 3.0
FAILOVER = EdgePolicy(failover=True, timeout=20, window=None)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Site:
    """A master supervising one edge, with both sides' actions carried out in order.

    Every start checks that the side it would compete with is not running where it
    could have been told to stop: a handover never starts the new controller early.
    """

    def __init__(self, policy: EdgePolicy) -> None:
        self.supervisor = SupervisorState.at_master_boot(None, policy, T0)
        self.edge = EdgeControlState.at_boot(T0)
        self.link = False
        self.master_booting = False
        self.master_running = False
        self.timer: datetime | None = None
        self.performed: list[Action] = []

    @property
    def running(self) -> set[str]:
        """The servers whose copies of the edge's modules run."""
        sides = {"master": self.master_running, "edge": self.edge.modules_running}
        return {side for side, running in sides.items() if running}

    @property
    def started_master_modules(self) -> bool:
        return StartMasterModules() in self.performed

    # --- what happens --------------------------------------------------------------

    def connect(self, now: datetime) -> None:
        self.link = True
        self._edge(self.edge.on_link_up())
        self.tell_master(LinkUp(now, self.edge.modules_running, self.master_booting))

    def partition(self, now: datetime) -> None:
        """The link drops while both servers keep running."""
        self.link = False
        self._edge(self.edge.on_link_lost(now))
        self.tell_master(LinkDown(now))

    def edge_crashes(self, now: datetime) -> None:
        """The edge process dies and comes back with nothing running and no link."""
        self.link = False
        self.edge = EdgeControlState.at_boot(now)
        self.tell_master(LinkDown(now))

    def edge_reconnect_fails(self, now: datetime) -> None:
        self._edge(self.edge.on_reconnect_failed(now, RETRY_S, master_alive=False))

    def master_goes_down(self, now: datetime) -> None:
        self.link = False
        self.master_running = False
        self.timer = None
        self._edge(self.edge.on_link_lost(now))

    def master_boots(self, now: datetime) -> None:
        """The master starts again from its persisted state and waits for edges."""
        persisted = self.supervisor.control
        self.supervisor = SupervisorState.at_master_boot(persisted, self.supervisor.policy, now)
        self.master_booting = True

    def boot_wait_over(self, now: datetime) -> None:
        self.tell_master(BootWaitOver(now))
        self.master_booting = False

    def timer_fires(self) -> None:
        assert self.timer is not None, "no failover timer is pending"
        self.tell_master(FailoverTimerFired(self.timer))

    # --- the I/O layers --------------------------------------------------------------

    def tell_master(self, event: Event) -> None:
        transition = step(self.supervisor, event)
        self.supervisor = transition.state
        for action in transition.actions:
            self.performed.append(action)
            self._carry_out(action)

    def _carry_out(self, action: Action) -> None:
        match action:
            case StartFailoverTimer(deadline):
                self.timer = deadline
            case CancelFailoverTimer():
                self.timer = None
            case StopMasterModules():
                self.master_running = False
            case StartMasterModules():
                assert not (self.link and self.edge.modules_running), "the edge still runs"
                self.master_running = True
            case SendControl(controller, epoch):
                assert self.link, "control sent without a link"
                if controller == "edge":
                    assert not self.master_running, "the master still runs"
                self._edge(self.edge.on_control(controller, epoch))
            case Persist() | TransferStatus() | Reject():
                pass

    def _edge(self, transition: EdgeTransition) -> None:
        self.edge = transition.state

    # --- reading the result ----------------------------------------------------------

    def handover_actions(self) -> list[Action]:
        """What was performed, besides persisting and recording."""
        return [a for a in self.performed if not isinstance(a, Persist)]

    def recorded(self) -> list[RecordEvent]:
        return [a.event for a in self.performed if isinstance(a, Persist)]


def connected_site(policy: EdgePolicy = FAILOVER) -> Site:
    site = Site(policy)
    site.connect(at(0))
    assert site.running == {"edge"}
    return site


# --- 1. failover --------------------------------------------------------------------


def test_1_the_master_takes_over_a_failed_edge_at_the_deadline() -> None:
    site = connected_site()
    site.edge_crashes(at(10))
    assert site.timer == at(30)
    assert retry_after(site.supervisor, at(12)) == 18
    assert site.running == set()
    site.timer_fires()
    control = site.supervisor.control
    assert site.running == {"master"}
    assert (control.controller, control.failover_active, control.failover_time) == (
        "master",
        True,
        at(30),
    )
    assert site.recorded()[-1].kind == "failover"


def test_1_without_failover_the_master_never_takes_over_and_says_why() -> None:
    site = connected_site(EdgePolicy(failover=False, timeout=20, window=None))
    site.edge_crashes(at(10))
    assert site.timer is None
    assert retry_after(site.supervisor, at(100)) is None
    control = site.supervisor.control
    assert (control.controller, control.online) == ("edge", False)
    assert "failover is off" in control.reason
    assert not site.started_master_modules


# --- 2. a short outage --------------------------------------------------------------


def test_2_an_edge_back_before_the_timeout_keeps_control() -> None:
    site = connected_site()
    site.partition(at(10))
    site.edge_reconnect_fails(at(13))
    site.connect(at(15))
    assert site.timer is None
    assert site.running == {"edge"}
    assert site.supervisor.control.controller == "edge"
    assert not site.started_master_modules


# --- 3. back after a failover -------------------------------------------------------


def test_3_a_restarted_edge_finds_the_master_in_control_and_a_restore_hands_back() -> None:
    site = connected_site()
    site.edge_crashes(at(10))
    site.timer_fires()
    site.connect(at(40))
    assert site.running == {"master"}
    assert site.supervisor.control.controller == "master"
    assert site.handover_actions()[-1] == SendControl("master", 2)

    site.performed.clear()
    site.tell_master(RestoreRequested(at(50), "ops"))
    assert site.handover_actions() == [
        StopMasterModules(),
        TransferStatus("edge"),
        SendControl("edge", 3),
    ]
    assert site.running == {"edge"}
    assert site.supervisor.control.failover_active is False


# --- 4. restore window --------------------------------------------------------------

WINDOW = RestoreWindow("5 12 * * *", 600)  # 12:05-12:15 UTC; the story starts at 12:00


def test_4_an_edge_reconnecting_inside_the_window_wins() -> None:
    site = connected_site(EdgePolicy(failover=True, timeout=20, window=WINDOW))
    site.edge_crashes(at(10))
    site.timer_fires()
    site.performed.clear()
    site.connect(at(6 * 60))
    assert site.handover_actions() == [
        StopMasterModules(),
        TransferStatus("edge"),
        SendControl("edge", 3),
    ]
    assert site.running == {"edge"}
    assert "restore window" in site.supervisor.control.reason


def test_4_the_window_opening_hands_a_connected_edge_back() -> None:
    site = connected_site(EdgePolicy(failover=True, timeout=20, window=WINDOW))
    site.edge_crashes(at(10))
    site.timer_fires()
    site.connect(at(40))
    assert site.running == {"master"}
    site.tell_master(WindowOpened(at(5 * 60)))
    assert site.running == {"edge"}
    assert site.recorded()[-1].kind == "restore"


# --- 5. master restarts -------------------------------------------------------------


def test_5_a_restarted_master_leaves_a_running_edge_in_control() -> None:
    site = connected_site()
    site.master_goes_down(at(100))
    site.master_boots(at(101))
    site.edge_reconnect_fails(at(103))
    site.connect(at(104))
    site.boot_wait_over(at(107))
    assert site.running == {"edge"}
    assert site.supervisor.control.controller == "edge"
    assert not site.started_master_modules


def test_5_a_restarted_master_takes_back_at_once_an_edge_it_held_that_is_still_down() -> None:
    site = connected_site()
    site.edge_crashes(at(10))
    site.timer_fires()
    site.master_goes_down(at(100))
    site.master_boots(at(101))
    assert site.running == set()
    site.boot_wait_over(at(107))
    assert site.running == {"master"}
    assert site.timer is None
    assert (site.supervisor.control.controller, site.supervisor.control.epoch) == ("master", 2)


# --- 6. master down -----------------------------------------------------------------


def test_6_an_edge_runs_its_modules_once_it_counts_as_disconnected() -> None:
    site = connected_site()
    site.tell_master(TakeoverRequested(at(5), "ops"))
    assert site.running == {"master"}
    site.master_goes_down(at(100))
    site.edge_reconnect_fails(at(101))
    assert site.running == set()
    site.edge_reconnect_fails(at(103))
    assert site.running == {"edge"}


# --- 7. partition -------------------------------------------------------------------


def test_7_after_a_partition_the_edge_with_its_devices_wins_and_the_master_stops() -> None:
    site = connected_site()
    site.partition(at(10))
    site.edge_reconnect_fails(at(13))
    site.timer_fires()
    assert site.running == {"edge", "master"}  # both controlled while apart

    site.performed.clear()
    site.connect(at(60))
    assert site.handover_actions() == [StopMasterModules(), SendControl("edge", 3)]
    assert site.running == {"edge"}
    assert "already runs its devices" in site.recorded()[-1].reason


# --- epochs -------------------------------------------------------------------------


def test_a_control_message_overtaken_by_a_newer_one_is_ignored() -> None:
    site = connected_site()
    site.tell_master(TakeoverRequested(at(5), "ops"))
    site.tell_master(RestoreRequested(at(6), "ops"))
    sent = [a for a in site.performed if isinstance(a, SendControl)]
    assert [(a.controller, a.epoch) for a in sent[-2:]] == [("master", 2), ("edge", 3)]

    edge = EdgeControlState.at_boot(at(0)).on_link_up().state
    edge = edge.on_control("edge", 3).state
    late = edge.on_control("master", 2)
    assert late.actions == ()
    assert late.state.modules_running


Operation = Callable[[Site, datetime, random.Random], None]


def _connect(site: Site, now: datetime, rng: random.Random) -> None:
    if not site.link:
        site.connect(now)


def _drop(site: Site, now: datetime, rng: random.Random) -> None:
    if site.link:
        rng.choice([site.partition, site.edge_crashes])(now)


def _edge_retries(site: Site, now: datetime, rng: random.Random) -> None:
    if not site.link:
        site.edge_reconnect_fails(now)


def _timer(site: Site, now: datetime, rng: random.Random) -> None:
    if site.timer is not None and site.timer <= now:
        site.tell_master(FailoverTimerFired(now))


def _operator(site: Site, now: datetime, rng: random.Random) -> None:
    request = RestoreRequested(now, "ops") if rng.random() < 0.5 else TakeoverRequested(now, "ops")
    site.tell_master(request)


def _window(site: Site, now: datetime, rng: random.Random) -> None:
    site.tell_master(WindowOpened(now))


def _config(site: Site, now: datetime, rng: random.Random) -> None:
    site.tell_master(ConfigChanged(now, rng.random() < 0.7, rng.choice([5, 20, 60]), WINDOW))


def _master_restart(site: Site, now: datetime, rng: random.Random) -> None:
    site.master_goes_down(now)
    site.master_boots(now)
    if rng.random() < 0.5:
        site.connect(now)
    site.boot_wait_over(now)


OPERATIONS: list[Operation] = [
    _connect,
    _drop,
    _edge_retries,
    _timer,
    _operator,
    _window,
    _config,
    _master_restart,
]


@pytest.mark.parametrize("seed", range(25))
def test_random_histories_keep_one_controller_and_growing_epochs(seed: int) -> None:
    rng = random.Random(seed)
    site = Site(EdgePolicy(failover=True, timeout=20, window=WINDOW))
    now = T0
    for _ in range(400):
        now += timedelta(seconds=rng.choice([1, 3, 10, 30]))
        before = site.supervisor.control
        rng.choice(OPERATIONS)(site, now, rng)
        control = site.supervisor.control
        assert control.epoch >= before.epoch
        assert control.epoch - before.epoch == (control.controller != before.controller)
        assert site.timer == control.failover_deadline
        if control.failover_deadline is not None:
            assert not control.online
            assert control.controller != "master"
        if site.link:
            assert site.running == {control.controller}
