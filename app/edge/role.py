"""The edge role: boot from the local replica, keep the link, run the location.

DESIGN §5: 1) load only its EdgeControl document; 2) the systems under its control;
3) the list of modules it controls; 4) connect to the master. Whether the modules
run follows the master's control messages while the link is up, and the disconnect
rule (wait ``ENGINE_LINK_RETRY_S``, then a failed attempt) while it is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from app.control.clock import now_utc
from app.control.edge import EdgeControlState, EdgeTransition, StartLocalModules
from app.control.state import Side
from app.edge.replica import replica_for
from app.edge.uplink import HelloFacts, Uplink
from app.errors import ControlledElsewhere, NotFound
from app.link import Control, Event, LinkClosed, LinkConnection, Welcome
from app.link.connection import Handler
from app.node import Node
from app.runtime.status import Unsubscribe
from app.services.control import describe, persisted_state
from app.services.limits import describe_skipped
from app.services.witness import Witness, WitnessReport, answer
from app.store.base import Document, DocumentNotFound, StoreError

log = logging.getLogger(__name__)


class StatusForwarder:
    """Pushes every status change and log line of the edge's modules to the master."""

    def __init__(self, link: Callable[[], LinkConnection | None]) -> None:
        self._link = link
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=10_000)
        self._status: dict[str, Unsubscribe] = {}
        self._debug: dict[str, Unsubscribe] = {}

    def push(self, event: str, **fields: Any) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait((event, fields))

    async def run(self) -> None:
        while True:
            event, fields = await self._queue.get()
            link = self._link()
            if link is not None:
                with contextlib.suppress(LinkClosed):
                    await link.send_event(event, **fields)

    def track(self, handles: dict[str, Any]) -> None:
        """Follow the status of exactly the modules in ``handles``."""
        for module_id in [m for m in self._status if m not in handles]:
            self._status.pop(module_id)()
        for module_id, handle in handles.items():
            if module_id not in self._status:
                self._status[module_id] = handle.subscribe_status(
                    lambda name, value, module_id=module_id: self.push(
                        "status", module_id=module_id, name=name, value=value
                    )
                )

    def debug(self, module_id: str, handle: Any | None) -> None:
        """Relay (``handle`` given) or stop relaying a module's log lines."""
        stop = self._debug.pop(module_id, None)
        if stop is not None:
            stop()
        if handle is not None:
            self._debug[module_id] = handle.subscribe_debug(
                lambda level, msg: self.push("debug", module_id=module_id, level=level, msg=msg)
            )


class EdgeRole:
    """Boots an edge and owns what only an edge runs."""

    def __init__(self, node: Node) -> None:
        self.node = node
        settings = node.settings
        assert settings.edge_id is not None
        self.edge_id: str = settings.edge_id
        self.control = EdgeControlState.at_boot(now_utc())
        self.replica = replica_for(
            node.store, on_progress=node.metrics.replica_seq.set, on_skipped=self._skipped
        )
        #: What the master last had to leave out of this replica, in words.
        self.replication_error: str | None = None
        self.forwarder = StatusForwarder(self._current_link)
        self.uplink = Uplink(
            settings,
            handlers=self._handlers(),
            on_event=self._on_event,
            listener=self,
            boot_time=time.time(),
        )
        self._handed_status: dict[str, dict[str, Any]] = {}
        self._control_lock = asyncio.Lock()
        #: Why the link was last refused or failed; None while it is up.
        self.link_error: tuple[str, datetime] | None = None
        #: What the master's witness last said.
        self.witness_report: WitnessReport | None = None
        self._witness = Witness(
            node.http_client(), asker=settings.node_name, timeout=settings.witness_timeout_s
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._replica_changed = asyncio.Event()
        node.control = self

    def _current_link(self) -> LinkConnection | None:
        return self.uplink.link

    # --- boot ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.replica.open()
        self._tasks.append(asyncio.create_task(self._boot(), name="edge boot"))

    async def _boot(self) -> None:
        boot = self.node.boot
        boot.advance("1/4 loading this edge's location")
        try:
            edge = await self.node.store.get(self.edge_id)
        except DocumentNotFound:
            edge = None
        boot.advance("2/4 loading the systems under its control")
        topology = await self.node.modules.topology(fresh=True)
        boot.advance("3/4 listing the modules it controls")
        modules = topology.modules_in([self.edge_id])
        boot.advance("4/4 connecting to the master")
        self._tasks.append(asyncio.create_task(self.forwarder.run(), name="status forwarder"))
        self._tasks.append(asyncio.create_task(self.uplink.run_forever(), name="uplink"))
        self._tasks.append(asyncio.create_task(self._watch_changes(), name="change watch"))
        self._tasks.append(asyncio.create_task(self._follow_replica(), name="replica follow"))
        if edge is None:
            log.warning(
                "edge %s has never synced with the master: no replica of its configuration "
                "yet; it keeps trying to reach %s",
                self.edge_id,
                self.node.settings.master_url,
            )
            boot.advance("waiting for the first sync with the master (never synced)")
            return
        self._complete(len(modules))

    def _complete(self, modules: int) -> None:
        self.node.boot.complete(
            role="edge", edge_id=self.edge_id, modules=modules, replica_seq=self.replica.seq
        )
        self.node.metrics.ready.set(1)

    def live_counts(self) -> dict[str, Any]:
        """The edge's part of ``/api/ready``: its link and replica now."""
        return {"master_connected": self.uplink.connected, "replica_seq": self.replica.seq}

    async def stop(self) -> None:
        self.node.metrics.ready.set(0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        link = self.uplink.link
        if link is not None:
            await link.close(1001, "edge shutting down")

    # --- the link (UplinkListener) -------------------------------------------------------

    def hello_facts(self) -> HelloFacts:
        return HelloFacts(
            devices_loaded=self.control.modules_running,
            replica_seq=self.replica.seq,
            commit=_head(self.node),
        )

    async def connected(self, link: LinkConnection, welcome: Welcome, control: Control) -> None:
        """Obey the handshake's control first, then catch up: a long or failing catch-up
        must never keep the location from its devices, nor drop the link."""
        log.info(
            "linked to the master (booting: %s); control: %s",
            welcome.master_booting,
            control.controller,
        )
        self.link_error = None
        await self._apply(lambda state: state.on_link_up())
        await self.obey(control.controller, control.epoch)
        try:
            await self.replica.catch_up(link)
        except LinkClosed:
            return
        except Exception as exc:
            log.error("replica catch-up failed: %s; retried now in the background", exc)
            self._replica_changed.set()
            return
        await self._synced()

    async def _synced(self) -> None:
        """A catch-up succeeded: a boot waiting for its first sync is complete."""
        if not self.node.boot.ready:
            topology = await self.node.modules.topology(fresh=True)
            self._complete(len(topology.modules_in([self.edge_id])))

    async def disconnected(self, reason: str) -> None:
        log.warning("link to the master lost: %s", reason)
        self.link_error = (reason, now_utc())
        await self._apply(lambda state: state.on_link_lost(now_utc()))
        if self.control.modules_running:
            await self._ask_master()

    async def attempt_failed(self, reason: str, *, refused: bool) -> None:
        self.link_error = (reason, now_utc())
        if await self._ask_master():
            return
        if refused and await self._locked_out():
            await self._apply(lambda state: state.on_master_controls())
            return
        retry_s = self.node.settings.link_retry_s
        await self._apply(lambda state: state.on_reconnect_failed(now_utc(), retry_s))

    async def _locked_out(self) -> bool:
        """Whether the master, alive, refuses this edge and is about to take its devices.

        Both the link and the witness refuse the edge's secret (revoked, say): the master
        answers, so it is no partition, and it will fail over after ``timeout``. The edge
        yields two retry intervals before that moment, so the devices never have two
        controllers; with failover off it keeps them.
        """
        report = self.witness_report
        lost = self.control.link_lost_at
        if report is None or report.result != "refused" or lost is None:
            return False
        try:
            body = (await self.node.store.get(self.edge_id)).body
        except StoreError:
            return False
        if not body.get("failover", True):
            return False
        margin = 2 * self.node.settings.link_retry_s
        waited = (now_utc() - lost).total_seconds()
        if waited < float(body.get("timeout", 20.0)) - margin:
            return False
        if self.control.modules_running:
            log.warning(
                "the master refuses this edge's secret and will take over its devices "
                "(failover after %s s): stopping them",
                body.get("timeout", 20.0),
            )
        return True

    async def _ask_master(self) -> bool:
        """Ask the master's witness; True (and the devices left to it) when it runs them."""
        master_url = self.node.settings.master_url
        secret = self.node.settings.edge_secret
        if not master_url or not secret:
            return False
        self.witness_report = await self._witness.ask(
            master_url, self.edge_id, [secret], self.witness_report
        )
        if not self.witness_report.controls:
            return False
        if self.control.modules_running:
            log.warning("the master runs the location's devices (its witness says so): stopping")
        await self._apply(lambda state: state.on_master_controls())
        return True

    async def obey(self, controller: str, epoch: int) -> dict[str, dict[str, Any]]:
        """A control message: run or stop the location's modules; returns stopped status."""
        if controller not in ("edge", "master"):
            return {}
        side: Side = "edge" if controller == "edge" else "master"
        return await self._apply(lambda state: state.on_control(side, epoch))

    async def _apply(
        self, decide: Callable[[EdgeControlState], EdgeTransition]
    ) -> dict[str, dict[str, Any]]:
        """Decide from the current state and carry it out; the state follows the actions.

        When an action fails the state stays what it was, so the next event decides
        again from what really runs.
        """
        async with self._control_lock:
            transition = decide(self.control)
            stopped: dict[str, dict[str, Any]] = {}
            for action in transition.actions:
                if isinstance(action, StartLocalModules):
                    log.info("taking control of the location's devices")
                    await self.node.modules.take(self.edge_id, status=self._handed_status)
                    self._handed_status = {}
                    self._announce()
                else:
                    log.info("handing control of the location's devices to the master")
                    stopped = await self.node.modules.release(self.edge_id)
                    self.forwarder.track({})
            self.control = transition.state
            return stopped

    def _announce(self) -> None:
        """Tell the master the full state of every module after they (re)start."""
        manager = self.node.modules.manager
        handles = {m: manager.handle(m) for m in manager.loaded_ids()}
        self.forwarder.track(handles)
        for module_id, handle in handles.items():
            self.forwarder.push(
                "module.state", module_id=module_id, state=handle.state(), funcs=handle.funcs()
            )

    async def _watch_changes(self) -> None:
        """The replica changed: bring the running modules in line.

        Cached tokens are dropped too, so a user or token deleted on the master stops
        working here as soon as its deletion has replicated.
        """
        async for seq in self.node.store.subscribe():
            self.node.metrics.store_seq.set(seq)
            self.node.auth.forget()
            try:
                await self.node.modules.reconcile()
                if self.control.modules_running:
                    self._announce()
            except Exception:
                log.exception("applying configuration changes failed")

    def _skipped(self, skipped: Sequence[Mapping[str, Any]]) -> None:
        self.node.metrics.replication_skipped.inc(len(skipped))
        self.replication_error = f"not replicated: {describe_skipped(skipped)}"

    def _on_event(self, event: Event) -> None:
        # Never pull from inside the link's reader: the answers would queue behind us.
        if event.event == "replica.changed":
            self._replica_changed.set()

    async def _follow_replica(self) -> None:
        """Pull the master's changes after each notice; notices during a pull coalesce."""
        while True:
            await self._replica_changed.wait()
            self._replica_changed.clear()
            link = self.uplink.link
            if link is None:
                continue
            try:
                await self.replica.catch_up(link)
            except Exception as exc:
                log.warning("replica catch-up failed: %s", exc)
                continue
            await self._synced()

    # --- what the master asks (DESIGN §6) ----------------------------------------------

    def _handlers(self) -> dict[str, Handler]:
        ops = self.node.operations

        async def exec_(args: dict[str, Any]) -> Any:
            handle = self._loaded(str(args["module_id"]))
            return await handle.exec(
                str(args["method"]),
                list(args.get("args", [])),
                dict(args.get("kwargs", {})),
                args.get("timeout"),
            )

        async def status(args: dict[str, Any]) -> Any:
            ids = args.get("module_ids")
            return ops.status(list(ids) if ids is not None else None)

        async def module_start(args: dict[str, Any]) -> Any:
            return await ops.start_module(str(args["module_id"]))

        async def module_stop(args: dict[str, Any]) -> Any:
            return await ops.stop_module(str(args["module_id"]))

        async def system_start(args: dict[str, Any]) -> Any:
            return {"failed": await ops.start_system(str(args["system_id"]))}

        async def system_stop(args: dict[str, Any]) -> Any:
            await ops.stop_system(str(args["system_id"]))
            return {}

        async def repository(args: dict[str, Any]) -> Any:
            return await ops.repository(
                str(args["action"]), args.get("commit"), bool(args.get("reload", False))
            )

        async def reload(args: dict[str, Any]) -> Any:
            return await ops.reload_driver(str(args["driver_id"]), args.get("files"))

        async def model_updated(args: dict[str, Any]) -> Any:
            link = self.uplink.link
            if link is not None:
                await self.replica.updated(link, dict(args.get("versions", {})))
            await self.node.modules.reconcile()
            return {"replica_seq": self.replica.seq}

        async def cache_expire(args: dict[str, Any]) -> Any:
            await self.node.modules.reconcile()
            return {}

        async def debug_subscribe(args: dict[str, Any]) -> Any:
            module_id = str(args["module_id"])
            self.forwarder.debug(module_id, self._loaded(module_id))
            return {}

        async def debug_unsubscribe(args: dict[str, Any]) -> Any:
            self.forwarder.debug(str(args["module_id"]), None)
            return {}

        async def control(args: dict[str, Any]) -> Any:
            stopped = await self.obey(str(args["controller"]), int(args["epoch"]))
            return {"status": stopped, "controller": self.control.controller}

        async def state_sync(args: dict[str, Any]) -> Any:
            self._handed_status = dict(args.get("status", {}))
            return {}

        async def ping(args: dict[str, Any]) -> Any:
            return {}

        return {
            "exec": exec_,
            "status": status,
            "module.start": module_start,
            "module.stop": module_stop,
            "system.start": system_start,
            "system.stop": system_stop,
            "repository": repository,
            "reload": reload,
            "model.updated": model_updated,
            "cache.expire": cache_expire,
            "debug.subscribe": debug_subscribe,
            "debug.unsubscribe": debug_unsubscribe,
            "control": control,
            "state.sync": state_sync,
            "ping": ping,
        }

    def _loaded(self, module_id: str) -> Any:
        manager = self.node.modules.manager
        if not manager.is_loaded(module_id):
            raise NotFound(f"module {module_id} is not running on edge {self.edge_id}")
        return manager.handle(module_id)

    # --- control questions (ControlService) ---------------------------------------------

    async def describe(self, edge: Document) -> dict[str, Any]:
        state = await persisted_state(self.node.store, edge.id)
        own = edge.id == self.edge_id
        return describe(
            edge,
            state,
            master_url=self.node.settings.master_url,
            replication_error=self.replication_error if own else None,
            link_error=self.link_error if own else None,
            witness=self.witness_report.as_json() if own and self.witness_report else None,
        )

    def health(self) -> dict[str, Any]:
        error = self.link_error
        return {
            "link": {
                "connected": self.uplink.connected,
                "error": error[0] if error else None,
                "error_at": error[1].isoformat() if error else None,
            },
            "controls": self.control.modules_running,
        }

    async def rotate_secret(self, edge: Document, grace_s: float) -> str:
        path = f"/api/edges/{edge.id}/secret"
        raise self._to_master(f"rotating the secret of edge {edge.id!r}", path)

    async def witness(
        self, edge: Document, *, nonce: str, proof: str, asker: str
    ) -> dict[str, Any]:
        secret = self.node.settings.edge_secret
        if edge.id != self.edge_id or not secret:
            raise NotFound(f"this server is not the edge {edge.id!r}")
        return answer(
            edge.id,
            nonce=nonce,
            proof=proof,
            asker=asker,
            secrets=[secret],
            controls=self.control.modules_running,
            node=self.node.settings.node_name,
        )

    async def restore(self, edge: Document, by: str) -> dict[str, Any]:
        raise self._to_master(f"restoring edge {edge.id!r}", f"/api/edges/{edge.id}/restore")

    async def takeover(self, edge: Document, by: str) -> dict[str, Any]:
        raise self._to_master(f"a takeover of edge {edge.id!r}", f"/api/edges/{edge.id}/takeover")

    async def repository(
        self, edge: Document, action: str, commit: str | None, reload: bool
    ) -> dict[str, Any]:
        if edge.id == self.edge_id:
            return await self.node.operations.repository(action, commit, reload)
        raise self._to_master("a repository request", f"/api/edges/{edge.id}/repository")

    def controls(self, edge_id: str) -> bool:
        return edge_id == self.edge_id and self.control.modules_running

    def _to_master(self, what: str, path: str) -> ControlledElsewhere:
        master = (self.node.settings.master_url or "").rstrip("/")
        return ControlledElsewhere(f"{what} is decided by the master", location=master + path)


def _head(node: Node) -> str | None:
    try:
        return node.repository.head()
    except Exception:
        return None
