"""What the master asks of an edge over the link (DESIGN §6), one handler per operation."""

from __future__ import annotations

from typing import Any

from app.edge.controller import EdgeController
from app.edge.forwarder import StatusForwarder
from app.edge.replica import Replica
from app.edge.uplink import CurrentLink
from app.errors import NotFound
from app.link.connection import Handler
from app.runtime.module import LocalModule
from app.services.modules import ModuleService
from app.services.operations import Operations


class MasterRequests:
    """The edge's table of link operations and what each does here."""

    def __init__(
        self,
        *,
        edge_id: str,
        operations: Operations,
        modules: ModuleService,
        controller: EdgeController,
        forwarder: StatusForwarder,
        replica: Replica,
        current: CurrentLink,
    ) -> None:
        self._edge_id = edge_id
        self._ops = operations
        self._modules = modules
        self._controller = controller
        self._forwarder = forwarder
        self._replica = replica
        self._current = current

    def handlers(self) -> dict[str, Handler]:
        return {
            "exec": self._exec,
            "status": self._status,
            "module.start": self._module_start,
            "module.stop": self._module_stop,
            "system.start": self._system_start,
            "system.stop": self._system_stop,
            "repository": self._repository,
            "reload": self._reload,
            "model.updated": self._model_updated,
            "cache.expire": self._cache_expire,
            "debug.subscribe": self._debug_subscribe,
            "debug.unsubscribe": self._debug_unsubscribe,
            "control": self._control,
            "state.sync": self._state_sync,
            "ping": self._ping,
        }

    async def _exec(self, args: dict[str, Any]) -> Any:
        handle = self._loaded(str(args["module_id"]))
        return await handle.exec(
            str(args["method"]),
            list(args.get("args", [])),
            dict(args.get("kwargs", {})),
            args.get("timeout"),
        )

    async def _status(self, args: dict[str, Any]) -> Any:
        ids = args.get("module_ids")
        return self._ops.status(list(ids) if ids is not None else None)

    async def _module_start(self, args: dict[str, Any]) -> Any:
        return await self._ops.start_module(str(args["module_id"]))

    async def _module_stop(self, args: dict[str, Any]) -> Any:
        return await self._ops.stop_module(str(args["module_id"]))

    async def _system_start(self, args: dict[str, Any]) -> Any:
        return {"failed": await self._ops.start_system(str(args["system_id"]))}

    async def _system_stop(self, args: dict[str, Any]) -> Any:
        await self._ops.stop_system(str(args["system_id"]))
        return {}

    async def _repository(self, args: dict[str, Any]) -> Any:
        return await self._ops.repository(
            str(args["action"]), args.get("commit"), bool(args.get("reload", False))
        )

    async def _reload(self, args: dict[str, Any]) -> Any:
        return await self._ops.reload_driver(str(args["driver_id"]), args.get("files"))

    async def _model_updated(self, args: dict[str, Any]) -> Any:
        link = self._current.link
        if link is not None:
            await self._replica.updated(link, dict(args.get("versions", {})))
        await self._modules.reconcile()
        return {"replica_seq": self._replica.seq}

    async def _cache_expire(self, args: dict[str, Any]) -> Any:
        await self._modules.reconcile()
        return {}

    async def _debug_subscribe(self, args: dict[str, Any]) -> Any:
        module_id = str(args["module_id"])
        self._forwarder.debug(module_id, self._loaded(module_id))
        return {}

    async def _debug_unsubscribe(self, args: dict[str, Any]) -> Any:
        self._forwarder.debug(str(args["module_id"]), None)
        return {}

    async def _control(self, args: dict[str, Any]) -> Any:
        stopped = await self._controller.obey(str(args["controller"]), int(args["epoch"]))
        return {"status": stopped, "controller": self._controller.state.controller}

    async def _state_sync(self, args: dict[str, Any]) -> Any:
        self._controller.hand_status(dict(args.get("status", {})))
        return {}

    async def _ping(self, args: dict[str, Any]) -> Any:
        return {}

    def _loaded(self, module_id: str) -> LocalModule:
        manager = self._modules.manager
        if not manager.is_loaded(module_id):
            raise NotFound(f"module {module_id} is not running on edge {self._edge_id}")
        return manager.handle(module_id)
