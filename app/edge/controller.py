"""Carries out the edge's control decisions: run or stop the location's modules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from app.control.clock import now_utc
from app.control.edge import EdgeControlState, EdgeTransition, StartLocalModules
from app.control.state import Side
from app.edge.forwarder import StatusForwarder
from app.services.modules import ModuleService

log = logging.getLogger(__name__)


class EdgeController:
    """Decides from the current control state and carries it out; the state follows."""

    def __init__(self, edge_id: str, modules: ModuleService, forwarder: StatusForwarder) -> None:
        self._edge_id = edge_id
        self._modules = modules
        self._forwarder = forwarder
        self.state = EdgeControlState.at_boot(now_utc())
        #: The status the master handed over with its last ``state.sync``.
        self._handed_status: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    @property
    def modules_running(self) -> bool:
        return self.state.modules_running

    def hand_status(self, status: Mapping[str, dict[str, Any]]) -> None:
        """The status the modules start with when this edge next takes control."""
        self._handed_status = dict(status)

    async def obey(self, controller: str, epoch: int) -> dict[str, dict[str, Any]]:
        """A control message: run or stop the location's modules; returns stopped status."""
        if controller not in ("edge", "master"):
            return {}
        side: Side = "edge" if controller == "edge" else "master"
        return await self.apply(lambda state: state.on_control(side, epoch))

    async def apply(
        self, decide: Callable[[EdgeControlState], EdgeTransition]
    ) -> dict[str, dict[str, Any]]:
        """Decide from the current state and carry it out; the state follows the actions.

        When an action fails the state stays what it was, so the next event decides
        again from what really runs.
        """
        async with self._lock:
            transition = decide(self.state)
            stopped: dict[str, dict[str, Any]] = {}
            for action in transition.actions:
                if isinstance(action, StartLocalModules):
                    log.info("taking control of the location's devices")
                    await self._modules.take(self._edge_id, status=self._handed_status)
                    self._handed_status = {}
                    self.announce()
                else:
                    log.info("handing control of the location's devices to the master")
                    stopped = await self._modules.release(self._edge_id)
                    self._forwarder.track({})
            self.state = transition.state
            return stopped

    def announce(self) -> None:
        """Tell the master the full state of every module after they (re)start."""
        manager = self._modules.manager
        handles = {m: manager.handle(m) for m in manager.loaded_ids()}
        self._forwarder.track(handles)
        for module_id, handle in handles.items():
            self._forwarder.push(
                "module.state", module_id=module_id, state=handle.state(), funcs=handle.funcs()
            )
