"""The master role: boot in the order of DESIGN §5, then supervise every edge.

Boot runs in the background so the control-link endpoint can take edges while the
master waits for them (step 5); the API answers 503 until step 6.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping
from typing import Any

from app.control.clock import now_utc
from app.control.state import ControlState, EdgePolicy, SupervisorState, control_document
from app.control.supervisor import (
    BootWaitOver,
    ConfigChanged,
    EdgeAlive,
    LinkDown,
    LinkUp,
    RestoreRequested,
    TakeoverRequested,
    WindowOpened,
    retry_after,
)
from app.control.windows import RestoreWindow
from app.errors import NotFound
from app.link import Event, Hello, LinkClosed, LinkConnection
from app.link.connection import Handler
from app.link.events import BadEvent, DebugLine, ModuleState, StatusChanged, parse_module_event
from app.master.feed import replica_changes, replica_fetch, versions_since
from app.master.links import Admission, EdgeLinks
from app.master.remote import DebugRelay, RemoteModule, StatusMirror
from app.master.supervision import EdgeSupervisor, load_persisted
from app.master.windows import RestoreWindows
from app.node import Node
from app.runtime.handle import ModuleHandle
from app.services.catalog import EDGE
from app.services.control import StoreHealth, describe, persisted_state
from app.services.limits import describe_skipped
from app.services.witness import Witness, WitnessReport, answer
from app.settings import LINK_ENVELOPE_BYTES
from app.store.base import Document, DocumentNotFound, StoreError
from app.store.couchbase import CouchbaseStore

log = logging.getLogger(__name__)


def edge_policy(doc: Document) -> EdgePolicy:
    """The part of an EdgeControl document that steers its supervision."""
    body = doc.body
    window = None
    if body.get("window_start"):
        window = RestoreWindow(
            body["window_start"], float(body["window_length"]), body.get("timezone", "UTC")
        )
    return EdgePolicy(
        failover=bool(body.get("failover", True)),
        timeout=float(body.get("timeout", 20.0)),
        window=window,
    )


class MasterRole:
    """Boots the master and owns what only the master runs."""

    def __init__(self, node: Node) -> None:
        self.node = node
        settings = node.settings
        self.booting = True
        self.supervisors: dict[str, EdgeSupervisor] = {}
        self.mirror = StatusMirror()
        self.debug = DebugRelay()
        self.store_health = StoreHealth(self._store_writable)
        self.links = EdgeLinks(
            secrets=node.secrets,
            handlers=self._handlers,
            on_event=self._on_event,
            max_frame=settings.link_max_frame,
            request_timeout=settings.request_timeout_s,
            ping_interval=settings.ping_interval_s,
        )
        self.links.listener = self
        self.windows = RestoreWindows(self._window_opened)
        self._remote: dict[str, RemoteModule] = {}
        #: What replication last had to leave out of each edge's replica, in words.
        self.replication_errors: dict[str, str] = {}
        self._policies: dict[str, EdgePolicy] = {}
        #: Where each edge's API answers (its witness), when configured.
        self._api_urls: dict[str, str | None] = {}
        #: What each edge's witness last said.
        self.witness_reports: dict[str, WitnessReport] = {}
        self._witness = Witness(
            node.http_client(), asker="master", timeout=settings.witness_timeout_s
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._supervising = asyncio.Lock()
        #: The edges the boot waits for (known once step 1 has loaded them).
        self._awaited: set[str] | None = None
        self._all_connected = asyncio.Event()
        node.modules.manager.lookup = self.remote_module
        node.control = self

    # --- boot (DESIGN §5, master) -----------------------------------------------------

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._boot(), name="master boot"))

    async def _boot(self) -> None:
        node, boot = self.node, self.node.boot
        try:
            boot.advance("1/6 loading edge locations")
            edges = (await node.store.find("edge")).items
            boot.advance("2/6 loading edge systems")
            topology = await node.modules.topology(fresh=True)
            boot.advance("3/6 listing edge modules")
            edge_modules = topology.modules_in([edge.id for edge in edges])
            if node.settings.admin_token:
                await node.auth.bootstrap_admin(node.settings.admin_token)
            boot.advance("4/6 starting the master's own modules")
            failures = await node.modules.take(None)
            for edge in edges:
                await self._supervise(edge)
            boot.advance("5/6 waiting for edges to connect")
            boot.expected_wait_s = node.settings.boot_wait_s
            self._awaited = {edge.id for edge in edges}
            self._check_all_connected()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(node.settings.boot_wait_s):
                    await self._all_connected.wait()
            for supervisor in list(self.supervisors.values()):
                await supervisor.handle(BootWaitOver(now_utc()))
            self.booting = False
            self.windows.start()
            self._tasks.append(asyncio.create_task(self._ask_witnesses(), name="witnesses"))
            self._tasks.append(asyncio.create_task(self._watch_changes(), name="change watch"))
            for edge_id in self.links.connected():
                link = self.links.get(edge_id)
                if link is not None:
                    with contextlib.suppress(LinkClosed):
                        await link.send_event("master.ready")
            boot.complete(
                role="master",
                edges=len(edges),
                edges_connected=len(self.links.connected()),
                edge_modules=len(edge_modules),
                modules_running=len(node.modules.manager.running_ids()),
                modules_failed=failures,
            )
            node.metrics.ready.set(1)
            log.info("master booted: %s", boot.summary)
        except Exception:
            log.exception("master boot failed")
            boot.advance("boot failed: see the log")
            raise

    async def stop(self) -> None:
        self.node.metrics.ready.set(0)
        self.windows.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for supervisor in self.supervisors.values():
            supervisor.close()
        await self.links.close_all()

    async def _supervise(self, edge: Document) -> EdgeSupervisor:
        """The edge's supervisor, created on first need (by boot or by its first link)."""
        async with self._supervising:
            supervisor = self.supervisors.get(edge.id)
            if supervisor is not None:
                return supervisor
            policy = edge_policy(edge)
            persisted = await load_persisted(self.node.store, edge.id)
            state = SupervisorState.at_master_boot(persisted, policy, now_utc())
            supervisor = EdgeSupervisor(
                edge.id, state, store=self.node.store, handover=self, health=self.store_health
            )
            self.supervisors[edge.id] = supervisor
            self._api_urls[edge.id] = edge.body.get("api_url")
            self._policies[edge.id] = policy
            self.windows.schedule(edge.id, policy.window)
            return supervisor

    def _check_all_connected(self) -> None:
        """End the boot wait once every edge known at boot is connected."""
        if self._awaited is not None and self._awaited <= set(self.links.connected()):
            self._all_connected.set()

    def live_counts(self) -> dict[str, Any]:
        """The master's part of ``/api/ready``: edges known and connected now."""
        return {"edges": len(self.supervisors), "edges_connected": len(self.links.connected())}

    # --- links (LinkListener) ---------------------------------------------------------

    async def admit(self, hello: Hello) -> Admission:
        try:
            edge = await self.node.store.get(hello.edge_id)
        except DocumentNotFound:
            raise NotFound(f"edge {hello.edge_id!r} does not exist") from None
        supervisor = await self._supervise(edge)
        control = await supervisor.admit(
            LinkUp(now_utc(), devices_loaded=hello.devices_loaded, master_booting=self.booting)
        )
        if hello.commit and edge.body.get("commit") != hello.commit:
            try:
                await self.node.catalog.set_maintained(EDGE, edge.id, commit=hello.commit)
            except StoreError as exc:  # the next connection records it
                log.warning("edge %s: its commit is not recorded: %s", edge.id, exc)
        return Admission(master_booting=self.booting, control=control)

    async def link_up(self, edge_id: str, link: LinkConnection, hello: Hello) -> None:
        self.node.metrics.links.set(len(self.links.connected()))
        self._check_all_connected()
        supervisor = self.supervisors.get(edge_id)
        if supervisor is not None:
            await supervisor.linked()
        self.debug.resubscribe(link)
        await self.refresh_mirror(edge_id, link)

    async def link_down(self, edge_id: str) -> None:
        self.node.metrics.links.set(len(self.links.connected()))
        supervisor = self.supervisors.get(edge_id)
        if supervisor is not None:
            await supervisor.handle(LinkDown(now_utc()))

    async def refresh_mirror(self, edge_id: str, link: LinkConnection) -> None:
        """Ask the edge for the full status of its modules (after connect or handover)."""
        try:
            modules = await link.request("status", {})
        except Exception as exc:
            log.info("no status from edge %s: %s", edge_id, exc)
            return
        for module_id, info in modules.items():
            self.mirror.replace(module_id, info.get("state", {}), info.get("funcs", {}))

    def _handlers(self, edge_id: str) -> Mapping[str, Handler]:
        return {
            "replica.changes": lambda args: self._replica_changes(edge_id, args),
            "replica.fetch": lambda args: replica_fetch(self.node.store, args),
        }

    async def _replica_changes(self, edge_id: str, args: dict[str, Any]) -> dict[str, Any]:
        max_bytes = self.node.settings.link_max_frame - LINK_ENVELOPE_BYTES
        answer = await replica_changes(self.node.store, args, max_bytes=max_bytes)
        skipped = answer.get("skipped")
        if skipped:
            text = describe_skipped(skipped)
            log.error(
                "edge %s: %d change(s) left out of its replica, which no link frame can "
                "carry (ENGINE_LINK_MAX_FRAME %d): %s",
                edge_id,
                len(skipped),
                self.node.settings.link_max_frame,
                text,
            )
            self.node.metrics.replication_skipped.inc(len(skipped))
            self.replication_errors[edge_id] = f"not replicated: {text}"
        return answer

    async def _on_event(self, edge_id: str, event: Event) -> None:
        try:
            parsed = parse_module_event(event.event, event.fields)
        except BadEvent as exc:
            log.warning("edge %s: %s", edge_id, exc)
            return
        if parsed is None:
            return
        topology = self.node.modules.cached_topology
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
                self.mirror.update(parsed.module_id, parsed.name, parsed.value)
            case ModuleState():
                self.mirror.replace(parsed.module_id, parsed.state, parsed.funcs)
            case DebugLine():
                self.debug.deliver(parsed.module_id, parsed.level, parsed.msg)

    # --- remote modules -----------------------------------------------------------------

    def remote_module(self, module_id: str) -> ModuleHandle | None:
        """The proxy of a module an edge controls now; None for the master's own."""
        topology = self.node.modules.cached_topology
        if topology is None:
            return None
        edge_id = topology.module_locations.get(module_id)
        if edge_id is None or self.node.modules.runs(edge_id):
            return None
        module = topology.modules.get(module_id)
        if module is None:
            return None
        remote = self._remote.get(module_id)
        if remote is None or remote.edge_id != edge_id or remote.name != module.body["name"]:
            remote = RemoteModule(
                module_id,
                str(module.body["name"]),
                edge_id,
                link=lambda: self.links.get(edge_id),
                mirror=self.mirror,
                debug=self.debug,
                default_timeout=self.node.settings.request_timeout_s,
            )
            self._remote[module_id] = remote
        return remote

    # --- handover (what supervisors ask of the master) -------------------------------

    def link(self, edge_id: str) -> LinkConnection | None:
        return self.links.get(edge_id)

    async def start_modules(self, edge_id: str, status: Mapping[str, Any]) -> None:
        await self.node.modules.take(edge_id, status=status)

    async def stop_modules(self, edge_id: str) -> dict[str, dict[str, Any]]:
        return await self.node.modules.release(edge_id)

    def mirrored_status(self, edge_id: str) -> dict[str, dict[str, Any]]:
        topology = self.node.modules.cached_topology
        if topology is None:
            return {}
        return self.mirror.snapshot(topology.modules_in([edge_id]))

    def control_changed(self, edge_id: str, state: ControlState) -> None:
        log.info(
            "edge %s: controller %s (epoch %d): %s",
            edge_id,
            state.controller,
            state.epoch,
            state.reason,
        )

    # --- operations ---------------------------------------------------------------------

    def supervisor(self, edge_id: str) -> EdgeSupervisor:
        supervisor = self.supervisors.get(edge_id)
        if supervisor is None:
            raise NotFound(f"edge {edge_id!r} is not supervised (does it exist?)")
        return supervisor

    async def describe(self, edge: Document) -> dict[str, Any]:
        supervisor = self.supervisors.get(edge.id)
        error = self.links.link_errors.get(edge.id)
        report = self.witness_reports.get(edge.id)
        extra: dict[str, Any] = {
            "master_url": self.node.settings.base_url,
            "link_error": (error.reason, error.at) if error else None,
            "witness": report.as_json() if report else None,
            "replication_error": self.replication_errors.get(edge.id),
        }
        if supervisor is None:
            state = await persisted_state(self.node.store, edge.id)
            return describe(edge, state, **extra)
        control, now = supervisor.state.control, now_utc()
        unrecorded = supervisor.unrecorded
        return describe(
            edge,
            control_document(control),
            retry_after=retry_after(supervisor.state, now),
            pending=unrecorded.as_json() if unrecorded else None,
            **extra,
        )

    def health(self) -> dict[str, Any]:
        unrecorded = sum(1 for s in self.supervisors.values() if s.unrecorded is not None)
        return {"store": self.store_health.as_json(), "decisions_unrecorded": unrecorded}

    def _store_writable(self, writable: bool) -> None:
        self.node.metrics.store_writable.set(1 if writable else 0)
        if not writable:
            self.node.metrics.store_write_failures.inc()

    async def rotate_secret(self, edge: Document, grace_s: float) -> str:
        secret = await self.node.secrets.issue(edge.id, grace_s)
        await self.links.revoke(edge.id)
        if grace_s > 0:
            task = asyncio.create_task(self._revoke_after(edge.id, grace_s))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return secret

    async def _revoke_after(self, edge_id: str, grace_s: float) -> None:
        """The grace ended: a link still on the previous secret closes now."""
        await asyncio.sleep(grace_s + 0.05)
        await self.links.revoke(edge_id)

    async def witness(
        self, edge: Document, *, nonce: str, proof: str, asker: str
    ) -> dict[str, Any]:
        return answer(
            edge.id,
            nonce=nonce,
            proof=proof,
            asker=asker,
            secrets=await self.node.secrets.valid(edge.id),
            controls=self.controls(edge.id),
            node=self.node.settings.node_name,
        )

    async def _ask_witnesses(self) -> None:
        """Every ping interval, ask each edge awaiting a failover whether it runs its devices.

        An edge whose link is down but whose API proves it controls its devices holds
        the failover off until ``timeout`` after that sign of life (DESIGN §5).
        """
        while True:
            await asyncio.sleep(self.node.settings.ping_interval_s)
            waiting = [
                (edge_id, url)
                for edge_id, supervisor in list(self.supervisors.items())
                if (url := self._api_urls.get(edge_id))
                and supervisor.state.control.failover_deadline is not None
            ]
            if waiting:
                await asyncio.gather(*(self._ask_witness(e, u) for e, u in waiting))

    async def _ask_witness(self, edge_id: str, url: str) -> None:
        try:
            secrets = await self.node.secrets.valid(edge_id)
            report = await self._witness.ask(
                url, edge_id, secrets, self.witness_reports.get(edge_id)
            )
            self.witness_reports[edge_id] = report
            supervisor = self.supervisors.get(edge_id)
            if report.controls and supervisor is not None:
                error = self.links.link_errors.get(edge_id)
                await supervisor.handle(
                    EdgeAlive(report.checked_at, link_error=error.reason if error else None)
                )
        except Exception:
            log.exception("asking the witness of edge %s failed", edge_id)

    async def restore(self, edge: Document, by: str) -> dict[str, Any]:
        await self.supervisor(edge.id).handle(RestoreRequested(now_utc(), by=by))
        return await self.describe(edge)

    async def takeover(self, edge: Document, by: str) -> dict[str, Any]:
        await self.supervisor(edge.id).handle(TakeoverRequested(now_utc(), by=by))
        return await self.describe(edge)

    async def repository(
        self, edge: Document, action: str, commit: str | None, reload: bool
    ) -> dict[str, Any]:
        """Run a repository request on the edge's server; record the commit it reports."""
        link = self.links.get(edge.id)
        if link is None:
            raise LinkClosed(f"edge {edge.id!r}")
        result: dict[str, Any] = await link.request(
            "repository", {"action": action, "commit": commit, "reload": reload}
        )
        if result.get("commit") and result["commit"] != edge.body.get("commit"):
            await self.node.catalog.set_maintained(EDGE, edge.id, commit=result["commit"])
        return result

    def controls(self, edge_id: str) -> bool:
        return self.node.modules.runs(edge_id)

    async def _window_opened(self, edge_id: str) -> None:
        supervisor = self.supervisors.get(edge_id)
        if supervisor is not None:
            await supervisor.handle(WindowOpened(now_utc()))

    # --- configuration changes ----------------------------------------------------------

    async def _watch_changes(self) -> None:
        """Every committed write: tell the edges, reconcile modules and supervisors."""
        announced = await self.node.store.last_seq()
        async for seq in self.node.store.subscribe():
            self.node.metrics.store_seq.set(seq)
            if self._replicated_by_link:
                await self._broadcast_event("replica.changed", seq=seq)
            elif seq > announced:
                versions, announced = await versions_since(self.node.store, announced)
                if versions:
                    self._broadcast_request("model.updated", {"versions": versions})
            try:
                await self._sync_edges()
                await self.node.modules.reconcile()
            except Exception:
                log.exception("applying configuration changes failed")

    @property
    def _replicated_by_link(self) -> bool:
        """The embedded store replicates over the links; Couchbase through XDCR."""
        return not isinstance(self.node.store, CouchbaseStore)

    async def _broadcast_event(self, event: str, **fields: Any) -> None:
        for edge_id in self.links.connected():
            link = self.links.get(edge_id)
            if link is not None:
                with contextlib.suppress(LinkClosed):
                    await link.send_event(event, **fields)

    def _broadcast_request(self, op: str, args: dict[str, Any]) -> None:
        """Ask every connected edge, without waiting: the watcher must keep going."""
        for edge_id in self.links.connected():
            link = self.links.get(edge_id)
            if link is not None:
                task = asyncio.create_task(_quietly(link.request(op, args), edge_id, op))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _sync_edges(self) -> None:
        edges = (await self.node.store.find("edge")).items
        for edge in edges:
            if edge.id not in self.supervisors:
                await self._supervise(edge)
                continue
            self._api_urls[edge.id] = edge.body.get("api_url")
            policy = edge_policy(edge)
            if policy != self._policies.get(edge.id):
                self._policies[edge.id] = policy
                self.windows.schedule(edge.id, policy.window)
                await self.supervisors[edge.id].handle(
                    ConfigChanged(now_utc(), policy.failover, policy.timeout, policy.window)
                )
        known = {edge.id for edge in edges}
        for edge_id in [e for e in self.supervisors if e not in known]:
            self.supervisors.pop(edge_id).close()
            self.windows.schedule(edge_id, None)
            self._api_urls.pop(edge_id, None)
            self.witness_reports.pop(edge_id, None)


async def _quietly(request: Awaitable[Any], edge_id: str, op: str) -> None:
    try:
        await request
    except Exception as exc:
        log.info("edge %s did not take %s: %s", edge_id, op, exc)
