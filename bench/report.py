"""Targets and their verdicts, results files, and the table for bench/README.md."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Target:
    """One figure with the bound it must respect."""

    name: str
    value: float | None
    limit: float
    unit: str
    #: True: the value must be at most the limit; False: at least.
    at_most: bool

    @property
    def met(self) -> bool | None:
        """None when the run did not measure the figure (a smoke run, a timeout)."""
        if self.value is None:
            return None
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": None if self.value is None else round(self.value, 4),
            "limit": self.limit,
            "unit": self.unit,
            "bound": "at most" if self.at_most else "at least",
            "met": self.met,
        }


VERDICTS = {True: "yes", False: "**no**", None: "not measured"}


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def targets_table(targets: Iterable[Mapping[str, Any]]) -> str:
    """A Markdown table of target verdicts, as ``Target.as_json`` records them."""
    rows = ["| figure | measured | target | met |", "| --- | ---: | ---: | :---: |"]
    for target in targets:
        value = target["value"]
        measured = "—" if value is None else f"{_number(value)} {target['unit']}"
        bound = "≤" if target["bound"] == "at most" else "≥"
        rows.append(
            f"| {target['name']} | {measured} | {bound} {_number(target['limit'])} "
            f"{target['unit']} | {VERDICTS[target['met']]} |"
        )
    return "\n".join(rows)


def _number(value: float) -> str:
    if abs(value) >= 100 or (value == int(value) and abs(value) < 1e15):
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
