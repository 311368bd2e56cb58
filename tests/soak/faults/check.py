"""The checker of a fault-schedule run: violations found in its history, nothing else.

Pure: it reads a :class:`~tests.soak.faults.history.History` and returns a
:class:`Report`; it never looks at a process, a socket or the clock. What it checks,
each a kind of :class:`Violation` (tests/soak/README.md explains the allowances):

- ``two_controllers``: a device had connections from two servers open at once. A
  server frozen by SIGSTOP holds its sockets but sends nothing, and once thawed acts
  on what it knew before until it hears otherwise, so its connections do not count
  from the freeze until ``frozen_grace_s`` after the thaw.
- ``two_probes_200``: ``/api/edges/{id}/controller`` answered 200 on two servers in
  one round, one of them both before and after the other (so both at once, not a
  handover between two probes). The frozen allowance applies.
- ``no_controller``: a device had no connection that counts (a frozen holder's does
  not, until its thaw) for longer than the location's ``timeout`` plus
  ``no_controller_slack_s``, while a server that may take it was ready and not frozen
  (a master, with failover on; the location's edge; never a clone).
- ``epoch_not_grown``: a location's epoch went down (in the master's ``/control`` or
  in its history), or one epoch named two controllers.
- ``decision_without_event``: the master's ``/control`` showed a decision, recorded
  (not pending), and no ControlEvent of that epoch and controller ever appeared.
- ``decision_unrecorded``: the same for a decision only ever seen pending (the
  master carried it out while its store refused writes, and it was never recorded).
- ``unobserved``: a location of which the run recorded no probe answer, no control
  sample or no device connection: the checks above would pass on nothing.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.soak.faults.history import (
    ControlSample,
    Decision,
    FaultEvent,
    History,
    Location,
    Probe,
    ProcessEvent,
)

Interval = tuple[float, float]

KINDS = (
    "two_controllers",
    "two_probes_200",
    "no_controller",
    "epoch_not_grown",
    "decision_without_event",
    "decision_unrecorded",
    "unobserved",
)

#: Owner of a connection whose process could not be named while it was open.
UNKNOWN = "unknown"


@dataclass(frozen=True)
class FaultSpan:
    """A fault from its application to its healing (None: never healed)."""

    id: int
    kind: str
    target: str
    applied: float
    healed: float | None
    ok: bool
    detail: dict[str, Any]


@dataclass(frozen=True)
class Violation:
    kind: str
    location: str
    start: float
    end: float
    detail: str
    #: The faults active around it: applied before its end, healed after ``lookback``
    #: seconds before its start.
    faults: tuple[FaultSpan, ...] = ()

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Report:
    violations: list[Violation]
    #: How much each check looked at, so a run that examined nothing shows it.
    examined: dict[str, int] = field(default_factory=dict)

    def by_kind(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for violation in self.violations:
            counts[violation.kind] += 1
        return counts


# --- intervals ----------------------------------------------------------------------


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, merged, without empty intervals."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersect(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    left, right = union(a), union(b)
    out: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start, end = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if end > start:
            out.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    holes = union(b)
    for start, end in union(a):
        cursor = start
        for hole_start, hole_end in holes:
            if hole_end <= cursor or hole_start >= end:
                continue
            if hole_start > cursor:
                out.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
        if cursor < end:
            out.append((cursor, end))
    return out


def covers(intervals: Sequence[Interval], start: float, end: float) -> bool:
    """Whether one of ``intervals`` overlaps ``[start, end]``."""
    return any(a <= end and b >= start for a, b in intervals)


# --- processes ----------------------------------------------------------------------


class Timeline:
    """What each server process was doing: its pids, when it could act, when it was frozen."""

    def __init__(self, events: Sequence[ProcessEvent], *, end: float, grace: float) -> None:
        self._end = end
        self._grace = grace
        self._events: dict[str, list[ProcessEvent]] = defaultdict(list)
        self._pids: dict[int, list[tuple[float, str]]] = defaultdict(list)
        for event in sorted(events, key=lambda e: e.t):
            self._events[event.name].append(event)
            if event.event == "start" and event.pid is not None:
                self._pids[event.pid].append((event.t, event.name))

    def owner(self, pid: int | None, t: float) -> str:
        """The server that had ``pid`` at ``t``."""
        if pid is None:
            return UNKNOWN
        started = [name for at, name in self._pids.get(pid, []) if at <= t]
        return started[-1] if started else f"pid {pid}"

    def able(self, name: str) -> list[Interval]:
        """When the server was ready and not frozen: able to take control."""
        out: list[Interval] = []
        alive = ready = frozen = False
        since: float | None = None
        for event in self._events.get(name, []):
            if event.event == "start":
                alive, ready, frozen = True, False, False
            elif event.event == "ready":
                ready = alive
            elif event.event == "freeze":
                frozen = True
            elif event.event == "thaw":
                frozen = False
            elif event.event == "exit":
                alive = ready = frozen = False
            now_able = alive and ready and not frozen
            if now_able and since is None:
                since = event.t
            elif not now_able and since is not None:
                out.append((since, event.t))
                since = None
        if since is not None:
            out.append((since, self._end))
        return out

    def frozen(self, name: str) -> list[Interval]:
        """From each freeze to its thaw (or the exit, or the end)."""
        return self._frozen(name, grace=0.0)

    def excused(self, name: str) -> list[Interval]:
        """From each freeze to ``grace`` after the thaw (or the exit, or the end)."""
        return self._frozen(name, grace=self._grace)

    def _frozen(self, name: str, *, grace: float) -> list[Interval]:
        out: list[Interval] = []
        frozen_at: float | None = None
        for event in self._events.get(name, []):
            if event.event == "freeze" and frozen_at is None:
                frozen_at = event.t
            elif event.event == "thaw" and frozen_at is not None:
                out.append((frozen_at, event.t + grace))
                frozen_at = None
            elif event.event == "exit" and frozen_at is not None:
                out.append((frozen_at, event.t))
                frozen_at = None
        if frozen_at is not None:
            out.append((frozen_at, self._end))
        return union(out)


# --- the checks ---------------------------------------------------------------------


def check(history: History, *, lookback: float | None = None) -> Report:
    """Every violation in ``history``, each with the faults around it."""
    run = history.run
    timeline = Timeline(history.processes, end=history.end, grace=run.frozen_grace_s)
    spans = fault_spans(history.faults)
    if lookback is None:
        lookback = 2 * max((loc.timeout for loc in run.locations), default=0.0) + 3.0
    violations: list[Violation] = []
    examined: dict[str, int] = defaultdict(int)
    for location in run.locations:
        found: list[Violation] = []
        found += _devices(history, location, timeline, examined)
        found += _probes(history, location, timeline, examined)
        found += _epochs(history, location, examined)
        found += _decisions(history, location)
        found += _observed(history, location)
        violations += [_with_faults(v, spans, lookback) for v in found]
    violations.sort(key=lambda v: (v.start, v.kind, v.location))
    return Report(violations, dict(examined))


def _devices(
    history: History, location: Location, timeline: Timeline, examined: dict[str, int]
) -> list[Violation]:
    start, end = history.run.t, history.end
    connections: list[tuple[str, float, float]] = []
    opened: dict[str, tuple[float, str]] = {}
    for event in sorted((e for e in history.devices if e.device == location.device), key=_t):
        if event.event == "open":
            opened[event.peer] = (event.t, timeline.owner(event.pid, event.t))
            examined["device_connections"] += 1
        elif event.peer in opened:
            at, owner = opened.pop(event.peer)
            connections.append((owner, at, event.t))
    connections += [(owner, at, end) for at, owner in opened.values()]
    # Two controllers: a frozen holder does not count until the grace after its thaw.
    doubled = _segments(_held(connections, timeline.excused, start, end), start, end)
    violations = [
        Violation(
            "two_controllers",
            location.name,
            a,
            b,
            f"{location.device} held by {', '.join(sorted(owners))} at once for {b - a:.3f} s",
        )
        for a, b, owners in _runs(doubled, lambda owners: len(owners) >= 2)
    ]
    # No controller: a frozen holder controls nothing; once thawed it does again.
    held = _segments(_held(connections, timeline.frozen, start, end), start, end)
    servers = (location.edge, *(history.run.masters if location.failover else ()))
    takers = [span for name in servers for span in timeline.able(name)]
    limit = location.timeout + history.run.no_controller_slack_s
    idle = [(a, b) for a, b, _ in _runs(held, lambda owners: not owners)]
    for a, b in intersect(idle, takers):
        if b - a > limit:
            able = [name for name in servers if intersect(timeline.able(name), [(a, b)])]
            violations.append(
                Violation(
                    "no_controller",
                    location.name,
                    a,
                    b,
                    f"{location.device} without a controller for {b - a:.2f} s (limit "
                    f"{limit:g} s) while {' and '.join(able)} could take it",
                )
            )
    return violations


def _held(
    connections: list[tuple[str, float, float]],
    excused: Callable[[str], list[Interval]],
    start: float,
    end: float,
) -> dict[str, list[Interval]]:
    """When each owner held the device, its ``excused`` times left out."""
    held: dict[str, list[Interval]] = defaultdict(list)
    for owner, opened, closed in connections:
        held[owner] += subtract([(opened, closed)], excused(owner))
    return {owner: intersect(spans, [(start, end)]) for owner, spans in held.items()}


def _segments(
    held: dict[str, list[Interval]], start: float, end: float
) -> list[tuple[float, float, frozenset[str]]]:
    """``[start, end]`` cut where anyone's holding starts or stops, with who holds each piece."""
    points = {start, end}
    for spans in held.values():
        for a, b in spans:
            points.update(p for p in (a, b) if start <= p <= end)
    ordered = sorted(points)
    out = []
    for a, b in itertools.pairwise(ordered):
        middle = (a + b) / 2
        owners = frozenset(o for o, spans in held.items() if any(x <= middle < y for x, y in spans))
        out.append((a, b, owners))
    return out


def _runs(
    segments: list[tuple[float, float, frozenset[str]]], keep: Callable[[frozenset[str]], bool]
) -> list[tuple[float, float, frozenset[str]]]:
    """Consecutive segments for which ``keep(owners)`` holds, merged (owners united)."""
    out: list[tuple[float, float, frozenset[str]]] = []
    for a, b, owners in segments:
        if not keep(owners):
            continue
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b, out[-1][2] | owners)
        else:
            out.append((a, b, owners))
    return out


def _probes(
    history: History, location: Location, timeline: Timeline, examined: dict[str, int]
) -> list[Violation]:
    doubled: list[tuple[float, float, str]] = []
    for round_ in history.probes:
        if round_.location != location.name or round_.t < history.run.t:
            continue
        examined["probe_rounds"] += 1
        yes = [
            p
            for p in sorted(round_.probes, key=lambda p: p.t0)
            if p.status == 200 and not covers(timeline.excused(p.server), p.t0, p.t1)
        ]
        both = _sandwiched(yes)
        if both is not None:
            doubled.append((round_.probes[0].t0, round_.probes[-1].t1, both))
    violations: list[Violation] = []
    rounds = 0
    for a, b, who in doubled:
        last = violations[-1] if violations else None
        if last is not None and a - last.end <= 1.0 and last.detail.startswith(who):
            rounds += 1
            violations[-1] = Violation(
                last.kind, location.name, last.start, b, f"{who}: 200 in {rounds} rounds"
            )
        else:
            rounds = 1
            violations.append(
                Violation("two_probes_200", location.name, a, b, f"{who}: 200 in 1 round")
            )
    return violations


def _sandwiched(yes: list[Probe]) -> str | None:
    """Two servers that answered 200 in one round, one before and after the other."""
    for i, first in enumerate(yes):
        for j in range(i + 1, len(yes)):
            middle = yes[j]
            if middle.server == first.server or middle.t0 < first.t1:
                continue
            for last in yes[j + 1 :]:
                if last.server == first.server and last.t0 >= middle.t1:
                    return " and ".join(sorted((first.server, middle.server)))
    return None


def _epochs(history: History, location: Location, examined: dict[str, int]) -> list[Violation]:
    violations: list[Violation] = []
    samples = sorted((c for c in history.controls if c.location == location.name), key=_t)
    decisions = sorted((d for d in history.decisions if d.location == location.name), key=_at)
    examined["control_samples"] += len(samples)
    examined["decisions"] += len(decisions)
    sources: list[tuple[str, Sequence[ControlSample | Decision]]] = [
        ("/control", samples),
        ("the history", decisions),
    ]
    for source, records in sources:
        highest: ControlSample | Decision | None = None
        previous: ControlSample | Decision | None = None
        for record in records:
            if (
                highest is not None
                and previous is not None
                and record.epoch != previous.epoch
                and record.epoch < highest.epoch
            ):
                violations.append(
                    Violation(
                        "epoch_not_grown",
                        location.name,
                        highest.t,
                        record.t,
                        f"epoch went down in {source}: {highest.epoch} ({highest.controller}) "
                        f"then {record.epoch} ({record.controller}){_pending(highest, record)}",
                    )
                )
            if highest is None or record.epoch > highest.epoch:
                highest = record
            previous = record
    named: dict[int, ControlSample | Decision] = {}
    everything: list[ControlSample | Decision] = [*samples, *decisions]
    for entry in sorted(everything, key=_t):
        first = named.setdefault(entry.epoch, entry)
        if first.controller != entry.controller:
            violations.append(
                Violation(
                    "epoch_not_grown",
                    location.name,
                    first.t,
                    entry.t,
                    f"epoch {entry.epoch} names two controllers: {first.controller} "
                    f"({_source(first)}) and {entry.controller} ({_source(entry)})",
                )
            )
            named[entry.epoch] = entry
    return violations


def _decisions(history: History, location: Location) -> list[Violation]:
    recorded = {(d.epoch, d.controller) for d in history.decisions if d.location == location.name}
    seen: dict[tuple[int, str], list[ControlSample]] = defaultdict(list)
    for sample in history.controls:
        if sample.location == location.name:
            seen[(sample.epoch, sample.controller)].append(sample)
    violations = []
    for (epoch, controller), samples in seen.items():
        if (epoch, controller) in recorded:
            continue
        kept = [s for s in samples if not s.pending]
        kind = "decision_without_event" if kept else "decision_unrecorded"
        how = "recorded" if kept else "only ever pending (the store refused it)"
        first, last = samples[0], samples[-1]
        violations.append(
            Violation(
                kind,
                location.name,
                first.t,
                last.t,
                f"{controller} controls (epoch {epoch}) in /control, {how}, and no ControlEvent "
                f"of that epoch and controller",
            )
        )
    return violations


def _observed(history: History, location: Location) -> list[Violation]:
    missing = []
    if not any(
        r.location == location.name and any(p.status for p in r.probes) for r in history.probes
    ):
        missing.append("no /controller answer")
    if not any(c.location == location.name for c in history.controls):
        missing.append("no /control sample")
    if not any(d.device == location.device and d.event == "open" for d in history.devices):
        missing.append(f"no connection to {location.device}")
    if not missing:
        return []
    detail = f"nothing to check: {', '.join(missing)}"
    return [Violation("unobserved", location.name, history.run.t, history.end, detail)]


# --- faults -------------------------------------------------------------------------


def fault_spans(events: Iterable[FaultEvent]) -> list[FaultSpan]:
    """Each fault from its application to its healing."""
    applied: dict[int, FaultEvent] = {}
    healed: dict[int, float] = {}
    for event in events:
        if event.phase == "apply":
            applied[event.id] = event
        elif event.phase == "heal":
            healed[event.id] = event.t
    return [
        FaultSpan(
            e.id,
            e.kind,
            e.target,
            e.t,
            e.t if e.instant else healed.get(e.id),
            e.ok,
            dict(e.detail),
        )
        for e in sorted(applied.values(), key=_t)
    ]


def _with_faults(violation: Violation, spans: list[FaultSpan], lookback: float) -> Violation:
    around = tuple(
        span
        for span in spans
        if span.applied <= violation.end
        and (span.healed is None or span.healed >= violation.start - lookback)
    )
    return Violation(
        violation.kind, violation.location, violation.start, violation.end, violation.detail, around
    )


# --- presentation -------------------------------------------------------------------


def describe(violation: Violation, origin: float) -> str:
    """Lines for a person: the violation, then the faults around it, in run seconds
    (``*`` marks those in force as it began)."""
    lines = [
        f"{violation.kind} at {violation.location}, t+{violation.start - origin:.2f} to "
        f"t+{violation.end - origin:.2f} s: {violation.detail}"
    ]
    for span in violation.faults:
        healed = f"t+{span.healed - origin:.2f}" if span.healed is not None else "never"
        state = "" if span.ok else " (failed)"
        detail = ", ".join(f"{k}={v}" for k, v in sorted(span.detail.items()))
        active = span.applied <= violation.start and (
            span.healed is None or span.healed >= violation.start
        )
        lines.append(
            f"  {'*' if active else ' '} fault #{span.id} {span.kind} {span.target}{state}: "
            f"t+{span.applied - origin:.2f} to {healed}{f' ({detail})' if detail else ''}"
        )
    return "\n".join(lines)


def timeline(history: History, start: float, end: float) -> list[str]:
    """Everything recorded between ``start`` and ``end`` (run seconds), one line each, in
    order: what to read around a violation. Probe rounds show as ``server=status``."""
    origin = history.run.t
    entries: list[tuple[float, str]] = []
    for process in history.processes:
        extra = f" ({process.detail})" if process.detail else ""
        entries.append((process.t, f"{process.name} {process.event} pid {process.pid}{extra}"))
    for fault in history.faults:
        state = "" if fault.ok else " FAILED"
        detail = ", ".join(f"{k}={v}" for k, v in sorted(fault.detail.items()))
        entries.append(
            (
                fault.t,
                f"fault #{fault.id} {fault.phase} {fault.kind} {fault.target}{state} {detail}",
            )
        )
    for device in history.devices:
        entries.append((device.t, f"{device.device} {device.event} {device.peer} pid {device.pid}"))
    for sample in history.controls:
        pending = " pending" if sample.pending else ""
        online = "online" if sample.online else "offline"
        entries.append(
            (
                sample.t,
                f"{sample.location} /control: {sample.controller} epoch {sample.epoch} "
                f"{online}{pending}",
            )
        )
    for decision in history.decisions:
        entries.append(
            (
                decision.t,
                f"{decision.location} event {decision.kind}: {decision.controller} epoch "
                f"{decision.epoch} at {decision.at}",
            )
        )
    for round_ in history.probes:
        answers = " ".join(f"{p.server}={p.status}" for p in round_.probes)
        entries.append((round_.t, f"{round_.location} probes: {answers}"))
    return [
        f"t+{t - origin:8.3f} {text}"
        for t, text in sorted(entries, key=lambda e: e[0])
        if start <= t - origin <= end
    ]


def _t(record: Any) -> float:
    return float(record.t)


def _at(record: Decision) -> tuple[str, float]:
    return (record.at, record.t)


def _pending(*records: ControlSample | Decision) -> str:
    pending = [r.epoch for r in records if isinstance(r, ControlSample) and r.pending]
    return f" (pending: epoch {', '.join(map(str, pending))})" if pending else ""


def _source(record: ControlSample | Decision) -> str:
    return "/control" if isinstance(record, ControlSample) else f"a {record.kind} event"
