"""The history of a fault-schedule run: one JSON object per line, written as things happen.

Every record has a ``type`` and a time ``t`` from ``time.monotonic()``: on Linux that
is one clock (``CLOCK_MONOTONIC``) for every process of the machine, so the device
process and the runner stamp their records on the same time line. Records:

- ``run``: the settings the checker needs (seed, timings, the locations and their
  devices) and ``t``, the moment checking starts (every location settled);
- ``process``: a server started (with its pid), became ready, exited, was frozen
  (SIGSTOP) or thawed (SIGCONT);
- ``fault``: a fault applied or healed, with its id, kind, target and details;
- ``device``: a device saw a connection open or close, and the pid that holds it;
- ``probes``: one round of ``GET /api/edges/{id}/controller`` on every server that may
  control a location, each probe with when it was sent and answered and its status;
- ``control``: the master's ``/api/edges/{id}/control`` whenever it changed;
- ``decision``: a ControlEvent, the first time the master's history showed it;
- ``end``: the run is over.

The dataclasses below are what :func:`parse` makes of the lines; the runner writes
them with :meth:`HistoryWriter.write`. The checker (:mod:`tests.soak.faults.check`)
reads only these.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar


@dataclass(frozen=True)
class Location:
    """An edge location: its id, the server that is its edge, its device, its policy."""

    name: str
    edge_id: str
    edge: str
    device: str
    timeout: float
    failover: bool = True


@dataclass(frozen=True)
class RunInfo:
    TYPE: ClassVar[str] = "run"

    t: float
    seed: int
    command: str
    started: str
    ping_interval_s: float
    witness_timeout_s: float
    locations: tuple[Location, ...]
    #: The masters: the servers that may take over every location with failover.
    masters: tuple[str, ...] = ("master",)
    #: How long a thawed process may keep what it held while frozen (README).
    frozen_grace_s: float = 0.0
    #: A location may be without a controller for ``timeout`` plus this (README).
    no_controller_slack_s: float = 2.0


@dataclass(frozen=True)
class ProcessEvent:
    TYPE: ClassVar[str] = "process"

    t: float
    name: str
    role: str
    event: str  # start | ready | exit | freeze | thaw (| snapshot: a pause of milliseconds)
    pid: int | None = None
    location: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class FaultEvent:
    TYPE: ClassVar[str] = "fault"

    t: float
    id: int
    kind: str
    target: str
    phase: str  # apply | heal
    ok: bool = True
    #: Done at once (an API call): there is no heal to wait for.
    instant: bool = False
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceEvent:
    TYPE: ClassVar[str] = "device"

    t: float
    device: str
    event: str  # open | close
    peer: str
    pid: int | None = None


@dataclass(frozen=True)
class Probe:
    """One ``/controller`` question: sent at ``t0``, answered at ``t1``; status 0 when
    no answer came."""

    server: str
    t0: float
    t1: float
    status: int


@dataclass(frozen=True)
class ProbeRound:
    TYPE: ClassVar[str] = "probes"

    t: float
    location: str
    probes: tuple[Probe, ...]


@dataclass(frozen=True)
class ControlSample:
    TYPE: ClassVar[str] = "control"

    t: float
    location: str
    controller: str
    epoch: int
    online: bool
    #: The master carried the decision out but its store has not recorded it yet.
    pending: bool = False


@dataclass(frozen=True)
class Decision:
    TYPE: ClassVar[str] = "decision"

    t: float
    location: str
    id: str
    at: str
    kind: str
    controller: str
    epoch: int


@dataclass(frozen=True)
class End:
    TYPE: ClassVar[str] = "end"

    t: float


Record = (
    RunInfo | ProcessEvent | FaultEvent | DeviceEvent | ProbeRound | ControlSample | Decision | End
)


@dataclass
class History:
    """Everything a run recorded, each kind of record in the order it was written."""

    run: RunInfo
    end: float
    processes: list[ProcessEvent] = field(default_factory=list)
    faults: list[FaultEvent] = field(default_factory=list)
    devices: list[DeviceEvent] = field(default_factory=list)
    probes: list[ProbeRound] = field(default_factory=list)
    controls: list[ControlSample] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def location(self, name: str) -> Location:
        return next(location for location in self.run.locations if location.name == name)


def encode(record: Record) -> str:
    """One line of JSON."""
    return json.dumps({"type": record.TYPE, **asdict(record)}, separators=(",", ":"))


class HistoryWriter:
    """Appends records to a file, one line each, flushed at once (a killed run keeps them)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def write(self, record: Record) -> None:
        self._file.write(encode(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class HistoryError(ValueError):
    """The history cannot be read: a line is not a record, or the run record is missing."""


def parse(lines: Iterable[str]) -> History:
    """The records of a history file's lines (blank lines are skipped)."""
    run: RunInfo | None = None
    end: float | None = None
    latest = 0.0
    parts: dict[str, list[Any]] = {
        kind: [] for kind in ("process", "fault", "device", "probes", "control", "decision")
    }
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            record = _decode(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise HistoryError(f"line {number}: {exc}") from exc
        latest = max(latest, record.t)
        if isinstance(record, RunInfo):
            run = record
        elif isinstance(record, End):
            end = record.t
        else:
            parts[record.TYPE].append(record)
    if run is None:
        raise HistoryError("no run record: the run ended before its locations settled")
    return History(
        run=run,
        end=end if end is not None else latest,
        processes=parts["process"],
        faults=parts["fault"],
        devices=parts["device"],
        probes=parts["probes"],
        controls=parts["control"],
        decisions=parts["decision"],
    )


def read(path: Path) -> History:
    with path.open(encoding="utf-8") as lines:
        return parse(lines)


def _decode(raw: dict[str, Any]) -> Record:
    kind = raw.pop("type")
    if kind == RunInfo.TYPE:
        raw["locations"] = tuple(Location(**location) for location in raw["locations"])
        raw["masters"] = tuple(raw.get("masters", ("master",)))
        return RunInfo(**raw)
    if kind == ProbeRound.TYPE:
        raw["probes"] = tuple(Probe(**probe) for probe in raw["probes"])
        return ProbeRound(**raw)
    plain = (ProcessEvent, FaultEvent, DeviceEvent, ControlSample, Decision, End)
    types: dict[str, type[Any]] = {cls.TYPE: cls for cls in plain}
    if kind not in types:
        raise ValueError(f"unknown record type {kind!r}")
    record: Record = types[kind](**raw)
    return record
