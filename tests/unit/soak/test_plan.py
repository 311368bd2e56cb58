"""The schedule a seed draws: reproducible, within its limits, extensible by role."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from tests.soak.faults.plan import (
    AT_ONCE,
    EDGE,
    EDGES,
    KINDS,
    MASTER,
    PROCESS,
    VOCABULARY,
    FaultKind,
    Shape,
    Step,
    Target,
    counts,
    make_plan,
)

SITE = [Target("master", MASTER), Target("edge1", EDGE), Target("edge2", EDGE)]
TEN_MINUTES = Shape(seconds=600.0, timeout=3.0)


def test_a_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    assert make_plan(7, SITE, TEN_MINUTES) == make_plan(7, SITE, TEN_MINUTES)
    assert make_plan(7, SITE, TEN_MINUTES) != make_plan(8, SITE, TEN_MINUTES)


def test_ten_minutes_bring_over_200_faults_of_every_kind() -> None:
    for seed in range(5):
        plan = make_plan(seed, SITE, TEN_MINUTES)
        assert len(plan) >= 200, (seed, len(plan))
        assert min(counts(plan).values()) >= 3, (seed, counts(plan))


def test_a_target_carries_one_fault_per_resource_at_a_time() -> None:
    plan = make_plan(11, SITE, TEN_MINUTES)
    lasting = [s for s in plan if KINDS[s.kind].resource != AT_ONCE]
    for a, b in itertools.combinations(lasting, 2):
        if a.target == b.target and KINDS[a.kind].resource == KINDS[b.kind].resource:
            assert a.heal_at <= b.at or b.heal_at <= a.at, (a, b)


def test_faults_go_only_to_targets_of_their_roles() -> None:
    roles = {t.name: t.role for t in SITE}
    for step in make_plan(3, SITE, TEN_MINUTES):
        assert roles[step.target] in KINDS[step.kind].roles, step


def test_at_most_max_active_lasting_faults_at_once_and_all_healed_by_the_end() -> None:
    shape = Shape(seconds=300.0, timeout=3.0, max_active=2)
    plan = make_plan(5, SITE, shape)
    lasting = [s for s in plan if KINDS[s.kind].resource != AT_ONCE]
    for step in lasting:
        active = [s for s in lasting if s.at <= step.at < s.heal_at]
        assert len(active) <= 2, active
    assert all(s.heal_at <= shape.seconds + 1e-9 for s in plan)
    assert all(s.at >= shape.warmup for s in plan)


def test_durations_scale_with_the_timeout_and_carry_their_parameters() -> None:
    plan = make_plan(9, SITE, Shape(seconds=600.0, timeout=2.0))
    kills = [s for s in plan if s.kind == "kill"]
    assert all(0.4 <= s.duration <= 5.0 for s in kills if s.heal_at < 600.0)
    rotations = [s for s in plan if s.kind == "rotate_secret"]
    assert {s.params["grace_s"] for s in rotations} <= {0.0, 1.0, 600.0}
    expiries = [s for s in plan if s.kind == "cert_expiry"]
    assert all(s.duration > s.params["life_s"] for s in expiries if s.heal_at < 600.0)


def test_a_new_role_is_a_target_list_and_the_kinds_that_name_it() -> None:
    """How the master cluster extends it: etcd members, faults that apply to them."""
    kill = replace(KINDS["kill"], roles=KINDS["kill"].roles | {"etcd"})
    kinds = [kill if kind.name == "kill" else kind for kind in VOCABULARY]
    site = [*SITE, Target("etcd1", "etcd"), Target("etcd2", "etcd")]
    plan = make_plan(1, site, TEN_MINUTES, kinds)
    members = [s for s in plan if s.target.startswith("etcd")]
    assert members
    assert {s.kind for s in members} == {"kill"}
    with pytest.raises(ValueError, match="share a name"):
        make_plan(1, site, TEN_MINUTES, [*VOCABULARY, FaultKind("kill", EDGES, PROCESS, 1.0)])


def test_steps_are_numbered_in_order() -> None:
    plan = make_plan(2, SITE, Shape(seconds=60.0, timeout=1.0))
    assert [s.id for s in plan] == list(range(1, len(plan) + 1))
    assert sorted(plan, key=lambda s: s.at) == plan
    assert isinstance(plan[0], Step)
