"""The fault-schedule checker finds each kind of violation in crafted histories, and only those.

Every history starts from the same calm site: a master and one edge, both ready, the
edge holding its device, probes answering 200 on the edge only, epoch 0 recorded.
Each test adds what a fault would have left behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from tests.soak.faults.check import (
    Violation,
    check,
    describe,
    intersect,
    subtract,
    union,
)
from tests.soak.faults.history import (
    ControlSample,
    Decision,
    DeviceEvent,
    FaultEvent,
    History,
    Location,
    Probe,
    ProbeRound,
    ProcessEvent,
    RunInfo,
    encode,
    parse,
)

MASTER, EDGE, CLONE = 100, 200, 300
NORTH = Location("north", "edge-n", "edge1", "dev1", timeout=2.0)
END = 60.0


@dataclass
class Site:
    """A history being built: the calm site, then what each test adds."""

    processes: list[ProcessEvent] = field(default_factory=list)
    devices: list[DeviceEvent] = field(default_factory=list)
    probes: list[ProbeRound] = field(default_factory=list)
    controls: list[ControlSample] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    faults: list[FaultEvent] = field(default_factory=list)
    port: int = 40000

    @classmethod
    def calm(cls) -> Site:
        site = cls()
        for name, role, pid in (("master", "master", MASTER), ("edge1", "edge", EDGE)):
            site.process(-5.0, name, "start", pid=pid, role=role)
            site.process(-4.0, name, "ready", role=role)
        site.open(-3.0, EDGE)
        site.control(0.0, "edge", 0)
        site.decide(-3.0, "connected", "edge", 0)
        for second in range(int(END)):
            site.round(second + 0.5, master=503, edge=200)
        return site

    def process(
        self, t: float, name: str, event: str, *, pid: int | None = None, role: str = "edge"
    ) -> None:
        location = None if role == "master" else "north"
        self.processes.append(ProcessEvent(t, name, role, event, pid, location))

    def open(self, t: float, pid: int | None) -> str:
        self.port += 1
        peer = f"127.0.0.1:{self.port}"
        self.devices.append(DeviceEvent(t, "dev1", "open", peer, pid))
        return peer

    def close(self, t: float, peer: str) -> None:
        self.devices.append(DeviceEvent(t, "dev1", "close", peer))

    def holder(self, pid: int) -> str:
        """The peer of the connection ``pid`` holds open now."""
        closed = {d.peer for d in self.devices if d.event == "close"}
        opened = [d.peer for d in self.devices if d.event == "open" and d.pid == pid]
        return next(peer for peer in opened if peer not in closed)

    def control(self, t: float, controller: str, epoch: int, *, pending: bool = False) -> None:
        self.controls.append(ControlSample(t, "north", controller, epoch, True, pending))

    def decide(self, at: float, kind: str, controller: str, epoch: int) -> None:
        stamp = f"2026-01-01T00:00:{at + 10:06.3f}+00:00"
        number = len(self.decisions)
        self.decisions.append(Decision(at, "north", f"ev{number}", stamp, kind, controller, epoch))

    def round(self, t: float, **statuses: int) -> None:
        """Every server probed twice in a row (as the runner does), 10 ms per probe."""
        names = {"master": "master", "edge": "edge1", "clone": "edge1-clone"}
        probes, at = [], t
        for _ in range(2):
            for who, status in statuses.items():
                probes.append(Probe(names[who], at, at + 0.01, status))
                at += 0.01
        self.probes = [p for p in self.probes if p.t != t]
        self.probes.append(ProbeRound(t, "north", tuple(probes)))

    def fault(self, t: float, ident: int, kind: str, target: str, healed: float | None) -> None:
        self.faults.append(FaultEvent(t, ident, kind, target, "apply"))
        if healed is not None:
            self.faults.append(FaultEvent(healed, ident, kind, target, "heal"))

    def history(self, **changes: object) -> History:
        run = RunInfo(
            t=0.0,
            seed=7,
            command="python -m tests.soak.faults --seed 7",
            started="2026-01-01T00:00:00+00:00",
            ping_interval_s=0.3,
            witness_timeout_s=1.0,
            locations=(NORTH,),
            frozen_grace_s=0.5,
            no_controller_slack_s=2.0,
        )
        return History(
            run=replace(run, **changes),  # type: ignore[arg-type]
            end=END,
            processes=self.processes,
            faults=self.faults,
            devices=self.devices,
            probes=self.probes,
            controls=self.controls,
            decisions=self.decisions,
        )


def kinds(site: Site) -> list[str]:
    return [v.kind for v in check(site.history()).violations]


def only(site: Site, kind: str) -> Violation:
    violations = check(site.history()).violations
    assert [v.kind for v in violations] == [kind], violations
    return violations[0]


def test_a_calm_run_has_no_violation_and_says_what_it_examined() -> None:
    report = check(Site.calm().history())
    assert report.violations == []
    assert report.examined == {
        "device_connections": 1,
        "probe_rounds": 60,
        "control_samples": 1,
        "decisions": 1,
    }
    assert set(report.by_kind().values()) == {0}


# --- two controllers ------------------------------------------------------------------


def test_two_servers_on_the_device_at_once_are_found_with_how_long() -> None:
    site = Site.calm()
    peer = site.open(10.0, MASTER)
    site.close(11.25, peer)
    violation = only(site, "two_controllers")
    assert (violation.start, violation.end) == (10.0, 11.25)
    assert "edge1, master" in violation.detail
    assert "1.250 s" in violation.detail


def test_a_handover_where_the_old_controller_closes_first_is_fine() -> None:
    site = Site.calm()
    site.close(10.0, site.holder(EDGE))
    peer = site.open(10.001, MASTER)
    site.close(20.0, peer)
    site.open(20.002, EDGE)
    assert kinds(site) == []


def test_a_clone_of_the_edge_is_a_second_controller() -> None:
    site = Site.calm()
    site.process(10.0, "edge1-clone", "start", pid=CLONE, role="clone")
    site.open(12.0, CLONE)
    violation = only(site, "two_controllers")
    assert (violation.start, violation.end) == (12.0, END)
    assert "edge1, edge1-clone" in violation.detail


def test_a_connection_nobody_could_be_named_for_still_counts() -> None:
    site = Site.calm()
    peer = site.open(10.0, None)
    site.close(10.5, peer)
    assert "edge1, unknown" in only(site, "two_controllers").detail


def test_a_process_reconnecting_to_its_device_is_one_controller() -> None:
    site = Site.calm()
    old = site.holder(EDGE)
    site.open(10.0, EDGE)
    site.close(10.2, old)
    assert kinds(site) == []


def test_a_frozen_process_holding_its_socket_is_excused_until_the_grace_after_its_thaw() -> None:
    site = Site.calm()
    site.process(9.0, "edge1", "freeze")
    site.open(12.0, MASTER)
    site.process(14.0, "edge1", "thaw")
    site.close(14.4, site.holder(EDGE))  # within the grace (0.5 s)
    assert kinds(site) == []


def test_a_connection_a_frozen_process_opens_as_it_thaws_is_excused_for_the_grace() -> None:
    """A connect in flight at the freeze, a module reconnecting right after the thaw."""
    site = Site.calm()
    site.close(8.0, site.holder(EDGE))
    site.open(8.1, MASTER)
    site.process(9.0, "master", "freeze", role="master")
    site.close(9.0, site.holder(MASTER))
    site.open(9.001, MASTER)  # completed by the kernel as the process stopped
    site.open(11.0, EDGE)
    site.process(14.0, "master", "thaw", role="master")
    site.close(14.01, site.holder(MASTER))
    peer = site.open(14.2, MASTER)
    site.close(14.3, peer)
    assert kinds(site) == []


def test_a_thawed_process_that_keeps_its_device_past_the_grace_is_a_second_controller() -> None:
    site = Site.calm()
    site.process(9.0, "edge1", "freeze")
    site.open(12.0, MASTER)
    site.process(14.0, "edge1", "thaw")
    site.close(15.0, site.holder(EDGE))
    violation = only(site, "two_controllers")
    assert (violation.start, violation.end) == (14.5, 15.0)


def test_overlap_before_the_run_settled_is_not_counted() -> None:
    site = Site.calm()
    peer = site.open(-2.0, MASTER)
    site.close(-1.0, peer)
    assert kinds(site) == []


# --- no controller --------------------------------------------------------------------


def test_a_device_left_alone_longer_than_timeout_plus_slack_while_the_master_is_up() -> None:
    site = Site.calm()
    site.process(10.0, "edge1", "exit")
    site.close(10.0, site.holder(EDGE))
    site.open(14.5, MASTER)  # limit: timeout 2 + slack 2
    violation = only(site, "no_controller")
    assert (violation.start, violation.end) == (10.0, 14.5)
    assert "while master could take it" in violation.detail


def test_a_failover_within_the_limit_is_fine() -> None:
    site = Site.calm()
    site.process(10.0, "edge1", "exit")
    site.close(10.0, site.holder(EDGE))
    site.open(13.9, MASTER)
    assert kinds(site) == []


def test_no_controller_counts_only_while_a_server_that_may_take_it_is_up() -> None:
    site = Site.calm()
    site.process(5.0, "master", "exit", role="master")
    site.process(10.0, "edge1", "exit")
    site.close(10.0, site.holder(EDGE))
    site.process(20.0, "master", "start", pid=MASTER + 1, role="master")
    site.process(22.0, "master", "ready", role="master")
    site.open(25.5, MASTER + 1)  # 3.5 s after the master was ready again
    assert kinds(site) == []
    site.devices.pop()
    site.open(26.5, MASTER + 1)  # 4.5 s
    violation = only(site, "no_controller")
    assert (violation.start, violation.end) == (22.0, 26.5)


def test_a_frozen_holder_is_no_controller_until_its_thaw() -> None:
    site = Site.calm()
    site.process(10.0, "edge1", "freeze")
    site.process(20.0, "edge1", "thaw")
    site.close(20.1, site.holder(EDGE))
    site.open(20.2, EDGE)
    violation = only(site, "no_controller")
    assert (violation.start, violation.end) == (10.0, 20.0)


def test_a_holder_frozen_then_killed_restarts_the_count_at_its_thaw() -> None:
    """Thawed, it held its device again: the master's wait rightly began anew."""
    site = Site.calm()
    site.process(10.0, "edge1", "freeze")
    site.process(13.0, "edge1", "thaw")
    site.process(13.5, "edge1", "exit")
    site.close(13.5, site.holder(EDGE))
    site.open(17.0, MASTER)
    assert kinds(site) == []


def test_without_failover_the_master_is_no_taker() -> None:
    site = Site.calm()
    site.process(10.0, "edge1", "exit")
    site.close(10.0, site.holder(EDGE))
    site.process(30.0, "edge1", "start", pid=EDGE + 1)
    site.process(31.0, "edge1", "ready")
    site.open(32.0, EDGE + 1)
    calm = replace(NORTH, failover=False)
    assert check(site.history(locations=(calm,))).violations == []
    assert [v.kind for v in check(site.history()).violations] == ["no_controller"]


# --- the controller probe -------------------------------------------------------------


def test_200_on_two_servers_in_one_round_is_found_and_consecutive_rounds_merge() -> None:
    site = Site.calm()
    for t in (10.5, 11.5, 12.5):
        site.round(t, master=200, edge=200)
    violation = only(site, "two_probes_200")
    assert violation.start == 10.5
    assert violation.end == pytest.approx(12.54)
    assert violation.detail == "edge1 and master: 200 in 3 rounds"


def test_a_handover_between_two_probes_is_not_two_200s() -> None:
    site = Site.calm()
    site.probes = [
        ProbeRound(
            10.0,
            "north",
            (
                Probe("master", 10.0, 10.01, 503),
                Probe("edge1", 10.01, 10.02, 200),
                Probe("master", 10.02, 10.03, 200),  # the edge handed over in between
                Probe("edge1", 10.03, 10.04, 503),
            ),
        ),
        ProbeRound(11.0, "north", (Probe("edge1", 11.0, 11.01, 200),)),
    ]
    assert kinds(site) == []


def test_a_frozen_server_answering_200_after_its_thaw_is_excused() -> None:
    site = Site.calm()
    site.process(9.0, "edge1", "freeze")
    site.process(10.3, "edge1", "thaw")
    site.round(10.5, master=200, edge=200)
    assert kinds(site) == []


def test_a_clone_answering_200_beside_the_edge_is_found() -> None:
    site = Site.calm()
    site.process(10.0, "edge1-clone", "start", pid=CLONE, role="clone")
    site.round(10.5, master=503, edge=200, clone=200)
    assert only(site, "two_probes_200").detail == "edge1 and edge1-clone: 200 in 1 round"


# --- epochs and decisions -------------------------------------------------------------


def test_an_epoch_going_down_in_control_is_found() -> None:
    site = Site.calm()
    site.control(10.0, "master", 2)
    site.decide(10.0, "failover", "master", 2)
    site.control(20.0, "edge", 1)
    site.decide(20.0, "connected", "edge", 1)
    found = check(site.history()).violations
    assert [v.kind for v in found] == ["epoch_not_grown", "epoch_not_grown"]
    assert "in /control: 2 (master) then 1 (edge)" in found[0].detail
    assert "in the history: 2 (master) then 1 (edge)" in found[1].detail


def test_a_change_of_controller_without_a_new_epoch_is_found() -> None:
    site = Site.calm()
    site.control(10.0, "master", 0)
    site.decide(10.0, "failover", "master", 0)
    found = check(site.history()).violations
    assert {v.kind for v in found} == {"epoch_not_grown"}
    assert "epoch 0 names two controllers: edge" in found[0].detail


def test_epochs_that_jump_after_a_restart_are_fine() -> None:
    site = Site.calm()
    site.control(10.0, "master", 1)
    site.decide(10.0, "failover", "master", 1)
    site.control(20.0, "edge", 105)
    site.decide(20.0, "restore", "edge", 105)
    assert kinds(site) == []


def test_a_recorded_decision_without_its_event_is_found() -> None:
    site = Site.calm()
    site.control(10.0, "master", 1)
    site.control(11.0, "master", 1)
    violation = only(site, "decision_without_event")
    assert "master controls (epoch 1)" in violation.detail
    assert (violation.start, violation.end) == (10.0, 11.0)


def test_a_decision_only_ever_pending_and_lost_is_found_apart() -> None:
    site = Site.calm()
    site.control(10.0, "master", 1, pending=True)
    assert "only ever pending" in only(site, "decision_unrecorded").detail


def test_a_decision_recorded_late_is_fine() -> None:
    site = Site.calm()
    site.control(10.0, "master", 1, pending=True)
    site.control(15.0, "master", 1)
    site.decide(16.0, "failover", "master", 1)
    assert kinds(site) == []


# --- nothing to check -----------------------------------------------------------------


@pytest.mark.parametrize("missing", ["probes", "controls", "devices"])
def test_a_location_never_observed_is_a_violation(missing: str) -> None:
    site = Site.calm()
    if missing == "probes":
        site.probes = [ProbeRound(r.t, r.location, ()) for r in site.probes]
    else:
        setattr(site, missing, [])
    violations = check(site.history()).violations
    assert "unobserved" in [v.kind for v in violations]


# --- the report -----------------------------------------------------------------------


def test_each_violation_names_the_faults_around_it() -> None:
    site = Site.calm()
    site.fault(1.0, 1, "kill", "master", healed=2.0)  # long before: left out
    site.fault(8.0, 2, "cut_link", "edge1", healed=12.0)
    site.fault(9.5, 3, "takeover", "edge1", healed=None)
    site.faults[-1] = replace(site.faults[-1], instant=True)
    site.fault(30.0, 4, "freeze", "master", healed=31.0)  # after: left out
    site.fault(11.0, 5, "clone", "edge1", healed=None)  # never healed
    peer = site.open(10.0, MASTER)
    site.close(11.0, peer)
    violation = only(site, "two_controllers")
    assert [span.id for span in violation.faults] == [2, 3, 5]
    text = describe(violation, origin=0.0)
    assert text.splitlines()[0].startswith("two_controllers at north, t+10.00 to t+11.00 s")
    assert "* fault #2 cut_link edge1: t+8.00 to t+12.00" in text
    assert "  fault #5 clone edge1: t+11.00 to never" in text


def test_a_history_reads_back_as_written() -> None:
    site = Site.calm()
    site.fault(8.0, 2, "cut_link", "edge1", healed=12.0)
    history = site.history()
    lines = [encode(history.run)]
    for part in (
        history.processes,
        history.faults,
        history.devices,
        history.probes,
        history.controls,
        history.decisions,
    ):
        lines += [encode(record) for record in part]
    read = parse([*lines, '{"type":"end","t":60.0}'])
    assert read == history


def test_intervals() -> None:
    assert union([(3, 4), (1, 2), (2, 2.5), (5, 5)]) == [(1, 2.5), (3, 4)]
    assert intersect([(0, 10)], [(1, 2), (5, 12)]) == [(1, 2), (5, 10)]
    assert subtract([(0, 10)], [(1, 2), (5, 12)]) == [(0, 1), (2, 5)]
