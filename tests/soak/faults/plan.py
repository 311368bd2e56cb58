"""The fault vocabulary and the schedule a seed draws from it. Pure: no I/O, no clock.

A run's faults are all drawn before it starts, from ``random.Random(seed)`` and the
run's shape (its targets, length and timeout) alone, so ``--seed`` replays the same
schedule whatever the servers did. Each :class:`FaultKind` says which roles it
applies to and which resource of its target it occupies for its duration: a target
carries at most one fault per resource at a time (it is not frozen while it is being
killed), but a link cut may meet a kill, and a store fault a restart. Adding a role
(masters of a cluster, etcd members) means registering targets of that role and
listing it in the kinds that apply to it; the runner maps each kind to its action.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: Roles of targets. A location's faults (cuts of its paths, its secret, a clone of
#: its edge, restore and takeover) target the location by its edge's role.
MASTER, EDGE = "master", "edge"

#: What a fault occupies on its target; "" for one done at once (an API call).
PROCESS, NETWORK, DISK, CLONE, AT_ONCE = "process", "network", "disk", "clone", ""


@dataclass(frozen=True)
class FaultKind:
    name: str
    roles: frozenset[str]
    resource: str
    #: How often it is drawn, against the other kinds that can be drawn at that moment.
    weight: float
    #: Its duration, in multiples of the failover timeout (unused for AT_ONCE).
    duration: tuple[float, float] = (0.0, 0.0)
    about: str = ""


BOTH = frozenset({MASTER, EDGE})
EDGES = frozenset({EDGE})

VOCABULARY: tuple[FaultKind, ...] = (
    FaultKind("kill", BOTH, PROCESS, 2.0, (0.2, 2.5), "SIGKILL, restarted after the duration"),
    FaultKind("freeze", BOTH, PROCESS, 2.0, (0.3, 3.0), "SIGSTOP, SIGCONT after the duration"),
    FaultKind(
        "store", BOTH, DISK, 1.0, (1.0, 4.0), "its SQLite files immutable (chattr +i): writes fail"
    ),
    FaultKind(
        "cert_expiry",
        BOTH,
        PROCESS,
        1.0,
        (1.0, 3.0),
        "restarted serving a certificate that expires `life` s later; its links cut once "
        "it has expired; restarted with a valid one after the duration",
    ),
    FaultKind("cut_link", EDGES, NETWORK, 1.5, (0.3, 3.0), "the control link drops everything"),
    FaultKind(
        "cut_link_edge_api",
        EDGES,
        NETWORK,
        1.5,
        (0.3, 3.0),
        "the link and the edge's api_url drop everything; the edge still reaches the master",
    ),
    FaultKind(
        "cut_link_master_api",
        EDGES,
        NETWORK,
        1.0,
        (0.3, 3.0),
        "the link and the edge's path to ENGINE_MASTER_URL drop everything; the master "
        "still reaches the edge's api_url",
    ),
    FaultKind(
        "rotate_secret",
        EDGES,
        PROCESS,
        1.0,
        (0.5, 3.0),
        "a new secret with a grace of `grace_s` (0 revokes); the edge restarted with it after "
        "the duration",
    ),
    FaultKind(
        "clone",
        EDGES,
        CLONE,
        0.7,
        (1.0, 4.0),
        "a second edge process with the same id, secret and a copy of the replica",
    ),
    FaultKind("restore", EDGES, AT_ONCE, 1.5, about="POST /api/edges/{id}/restore"),
    FaultKind("takeover", EDGES, AT_ONCE, 1.0, about="POST /api/edges/{id}/takeover"),
)

KINDS = {kind.name: kind for kind in VOCABULARY}


@dataclass(frozen=True)
class Target:
    name: str
    role: str


@dataclass(frozen=True)
class Step:
    """One fault: applied ``at`` seconds into the schedule, healed ``duration`` later."""

    id: int
    at: float
    kind: str
    target: str
    duration: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def heal_at(self) -> float:
        return self.at + self.duration


@dataclass(frozen=True)
class Shape:
    """What a schedule depends on besides the seed."""

    seconds: float
    timeout: float
    #: Seconds between two faults, drawn uniformly.
    gap: tuple[float, float] = (1.0, 4.0)
    #: Faults that last (not AT_ONCE) active at once, at most.
    max_active: int = 3
    #: Nothing is applied in the first seconds: the site is watched calm first.
    warmup: float = 2.0


def make_plan(
    seed: int,
    targets: Sequence[Target],
    shape: Shape,
    kinds: Sequence[FaultKind] = VOCABULARY,
) -> list[Step]:
    """The faults of a run, in order. The same arguments give the same schedule."""
    resource = {kind.name: kind.resource for kind in kinds}
    if len(resource) != len(kinds):
        raise ValueError("two fault kinds share a name: give one kind the roles of both")
    rng = random.Random(seed)
    busy: dict[tuple[str, str], float] = {}
    steps: list[Step] = []
    t = shape.warmup
    while True:
        t += rng.uniform(*shape.gap)
        if t >= shape.seconds:
            return steps
        active = sum(1 for s in steps if resource[s.kind] and s.heal_at > t)
        choices = [
            (kind, [tg for tg in targets if _free(kind, tg, busy, t)])
            for kind in kinds
            if kind.resource == AT_ONCE or active < shape.max_active
        ]
        choices = [(kind, free) for kind, free in choices if free]
        if not choices:
            continue
        kind, free = rng.choices(choices, weights=[k.weight for k, _ in choices])[0]
        target = rng.choice(free)
        duration = rng.uniform(*kind.duration) * shape.timeout if kind.resource else 0.0
        params = _params(kind.name, rng)
        if kind.name == "cert_expiry":
            duration += params["life_s"]
        # Never healed past the end: the run heals whatever is left when it ends.
        duration = min(duration, shape.seconds - t)
        if kind.resource:
            busy[(target.name, kind.resource)] = t + duration
        steps.append(Step(len(steps) + 1, round(t, 3), kind.name, target.name, duration, params))


def _free(kind: FaultKind, target: Target, busy: dict[tuple[str, str], float], t: float) -> bool:
    if target.role not in kind.roles:
        return False
    return kind.resource == AT_ONCE or busy.get((target.name, kind.resource), 0.0) <= t


def _params(kind: str, rng: random.Random) -> dict[str, Any]:
    if kind == "rotate_secret":
        # Revoked at once, a grace shorter than the deployment, or a comfortable one.
        return {"grace_s": rng.choice([0.0, 1.0, 600.0, 600.0])}
    if kind == "cert_expiry":
        return {"life_s": round(rng.uniform(3.0, 8.0), 1)}
    return {}


def counts(steps: Sequence[Step]) -> dict[str, int]:
    """Steps by kind, every kind of the vocabulary listed."""
    out = dict.fromkeys(KINDS, 0)
    for step in steps:
        out[step.kind] += 1
    return out
