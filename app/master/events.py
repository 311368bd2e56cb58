"""What edges tell the master unasked: their modules' status and log lines."""

from __future__ import annotations

import logging

from app.link import Event
from app.link.events import BadEvent, DebugLine, ModuleState, StatusChanged, parse_module_event
from app.master.remote import DebugRelay, StatusMirror
from app.services.modules import ModuleService

log = logging.getLogger(__name__)


class ModuleEvents:
    """Keeps the status mirror and the debug relay current from each edge's events."""

    def __init__(self, modules: ModuleService, mirror: StatusMirror, debug: DebugRelay) -> None:
        self._modules = modules
        self._mirror = mirror
        self._debug = debug

    async def __call__(self, edge_id: str, event: Event) -> None:
        try:
            parsed = parse_module_event(event.event, event.fields)
        except BadEvent as exc:
            log.warning("edge %s: %s", edge_id, exc)
            return
        if parsed is None:
            return
        topology = self._modules.cached_topology
        if topology is None or topology.module_locations.get(parsed.module_id) != edge_id:
            log.warning(
                "edge %s sent %s for module %s, which is not in its location: ignored",
                edge_id,
                parsed.event,
                parsed.module_id,
            )
            return
        match parsed:
            case StatusChanged():
                self._mirror.update(parsed.module_id, parsed.name, parsed.value)
            case ModuleState():
                self._mirror.replace(parsed.module_id, parsed.state, parsed.funcs)
            case DebugLine():
                self._debug.deliver(parsed.module_id, parsed.level, parsed.msg)
