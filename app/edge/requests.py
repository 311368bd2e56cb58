"""What the master asks of an edge over the link (DESIGN §6): one typed table."""

from __future__ import annotations

from collections.abc import Mapping

from app.edge.controller import EdgeController
from app.edge.forwarder import StatusForwarder
from app.edge.replica import Replica
from app.edge.uplink import CurrentLink
from app.errors import NotFound
from app.link.ops import (
    CACHE_EXPIRE,
    CONTROL,
    DEBUG_SUBSCRIBE,
    DEBUG_UNSUBSCRIBE,
    EXEC,
    MASTER_TO_EDGE,
    MODEL_UPDATED,
    MODULE_START,
    MODULE_STOP,
    PING,
    RELOAD,
    REPOSITORY,
    STATE_SYNC,
    STATUS,
    SYSTEM_START,
    SYSTEM_STOP,
    ControlArgs,
    ControlObeyed,
    Empty,
    ExecArgs,
    Handler,
    ModelUpdated,
    ModelUpdatedArgs,
    ModuleArgs,
    NoArgs,
    ReloadArgs,
    RepositoryArgs,
    StateSyncArgs,
    StatusArgs,
    SystemArgs,
    SystemStarted,
    op_table,
)
from app.runtime.module import LocalModule
from app.runtime.reports import (
    DriverReloaded,
    JsonValue,
    ModuleDescription,
    ModuleStatus,
    RepositoryOutcome,
)
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

    def handlers(self) -> Mapping[str, Handler]:
        return op_table(
            MASTER_TO_EDGE,
            EXEC.serve(self._exec),
            STATUS.serve(self._status),
            MODULE_START.serve(self._module_start),
            MODULE_STOP.serve(self._module_stop),
            SYSTEM_START.serve(self._system_start),
            SYSTEM_STOP.serve(self._system_stop),
            REPOSITORY.serve(self._repository),
            RELOAD.serve(self._reload),
            MODEL_UPDATED.serve(self._model_updated),
            CACHE_EXPIRE.serve(self._cache_expire),
            DEBUG_SUBSCRIBE.serve(self._debug_subscribe),
            DEBUG_UNSUBSCRIBE.serve(self._debug_unsubscribe),
            CONTROL.serve(self._control),
            STATE_SYNC.serve(self._state_sync),
            PING.serve(self._ping),
        )

    async def _exec(self, args: ExecArgs) -> JsonValue:
        handle = self._loaded(args["module_id"])
        answer: JsonValue = await handle.exec(
            args["method"], args["args"], args["kwargs"], args["timeout"]
        )
        return answer

    async def _status(self, args: StatusArgs) -> dict[str, ModuleStatus]:
        return self._ops.status(args.get("module_ids"))

    async def _module_start(self, args: ModuleArgs) -> ModuleDescription:
        return await self._ops.start_module(args["module_id"])

    async def _module_stop(self, args: ModuleArgs) -> ModuleDescription:
        return await self._ops.stop_module(args["module_id"])

    async def _system_start(self, args: SystemArgs) -> SystemStarted:
        return {"failed": await self._ops.start_system(args["system_id"])}

    async def _system_stop(self, args: SystemArgs) -> Empty:
        await self._ops.stop_system(args["system_id"])
        return {}

    async def _repository(self, args: RepositoryArgs) -> RepositoryOutcome:
        return await self._ops.repository(args["action"], args["commit"], args["reload"])

    async def _reload(self, args: ReloadArgs) -> DriverReloaded:
        return await self._ops.reload_driver(args["driver_id"], args["files"])

    async def _model_updated(self, args: ModelUpdatedArgs) -> ModelUpdated:
        link = self._current.link
        if link is not None:
            await self._replica.updated(link, args["versions"])
        await self._modules.reconcile()
        return {"replica_seq": self._replica.seq}

    async def _cache_expire(self, args: NoArgs) -> Empty:
        await self._modules.reconcile()
        return {}

    async def _debug_subscribe(self, args: ModuleArgs) -> Empty:
        module_id = args["module_id"]
        self._forwarder.debug(module_id, self._loaded(module_id))
        return {}

    async def _debug_unsubscribe(self, args: ModuleArgs) -> Empty:
        self._forwarder.debug(args["module_id"], None)
        return {}

    async def _control(self, args: ControlArgs) -> ControlObeyed:
        stopped = await self._controller.obey(args["controller"], args["epoch"])
        return {"status": stopped, "controller": self._controller.state.controller}

    async def _state_sync(self, args: StateSyncArgs) -> Empty:
        self._controller.hand_status(args["status"])
        return {}

    async def _ping(self, args: NoArgs) -> Empty:
        return {}

    def _loaded(self, module_id: str) -> LocalModule:
        manager = self._modules.manager
        if not manager.is_loaded(module_id):
            raise NotFound(f"module {module_id} is not running on edge {self._edge_id}")
        return manager.handle(module_id)
