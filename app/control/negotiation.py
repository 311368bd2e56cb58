"""Who controls an edge's devices when the edge connects to the master.

The rules are the seed's, applied in order; the first that applies decides.
Effectively the master only wins control if it already has control.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.control.state import Side


@dataclass(frozen=True)
class NegotiationInput:
    """What is known at the moment an edge connects."""

    edge_devices_loaded: bool
    inside_restore_window: bool
    master_booting: bool
    master_has_control: bool


@dataclass(frozen=True)
class Decision:
    """Who controls the edge's devices, and why in words an operator understands."""

    controller: Side
    reason: str


def negotiate(inp: NegotiationInput) -> Decision:
    """Decide who controls the edge's devices after a connection."""
    if inp.edge_devices_loaded:
        return Decision(
            "edge",
            "the edge already runs its devices (after a master or network outage), "
            "so it keeps them",
        )
    if inp.inside_restore_window:
        return Decision("edge", "the edge connected inside its restore window")
    if inp.master_booting:
        return Decision("edge", "the master is still booting and has not loaded the edge's modules")
    if inp.master_has_control:
        return Decision("master", "the master already controls the edge's devices and keeps them")
    return Decision("edge", "the master does not control the edge's devices")
