"""The supervisor of each edge, created on first need and kept in line with its document."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from app.control.clock import now_utc
from app.control.state import EdgePolicy, SupervisorState
from app.control.supervisor import BootWaitOver, ConfigChanged, LocationCreated, WindowOpened
from app.errors import NotFound
from app.master.recorder import RecordWriter
from app.master.supervision import EdgeSupervisor, Handover, HandoverListener, load_persisted
from app.master.windows import RestoreWindows
from app.metrics import LocationFacts
from app.services.control import StoreHealth, failover_timeout, restore_window
from app.services.tasks import BackgroundTasks
from app.store.base import Document, Store


def edge_policy(doc: Document) -> EdgePolicy:
    """The part of an EdgeControl document that steers its supervision."""
    return EdgePolicy(
        failover=bool(doc.body.get("failover", True)),
        timeout=failover_timeout(doc),
        window=restore_window(doc),
    )


class SupervisedEdges:
    """Every edge's supervisor, with the policy, witness URL and restore window it follows."""

    def __init__(
        self,
        store: Store,
        handover: Handover,
        health: StoreHealth,
        tasks: BackgroundTasks,
        *,
        on_handover: HandoverListener | None = None,
    ) -> None:
        self._store = store
        self._tasks = tasks
        self._on_handover = on_handover
        #: One writer for every supervisor's records, so that they share transactions.
        self._writer = RecordWriter(store)
        self._handover = handover
        self._health = health
        self.supervisors: dict[str, EdgeSupervisor] = {}
        self._policies: dict[str, EdgePolicy] = {}
        #: Where each edge's API answers (its witness), when configured.
        self._api_urls: dict[str, str | None] = {}
        self.windows = RestoreWindows(self._window_opened)
        self._lock = asyncio.Lock()
        #: Set once the boot stopped waiting for edges: a location created after that
        #: is waited for from its creation, as the boot waits for every edge.
        self._boot_wait_over = False

    def get(self, edge_id: str) -> EdgeSupervisor | None:
        return self.supervisors.get(edge_id)

    def supervisor(self, edge_id: str) -> EdgeSupervisor:
        """The edge's supervisor; ``NotFound`` when the master does not supervise it."""
        supervisor = self.supervisors.get(edge_id)
        if supervisor is None:
            raise NotFound(f"edge {edge_id!r} is not supervised (does it exist?)")
        return supervisor

    def api_url(self, edge_id: str) -> str | None:
        return self._api_urls.get(edge_id)

    async def boot_wait_over(self) -> None:
        """The boot stopped waiting: every edge not connected is handled as the boot
        rule says (taken back, or awaited for its ``timeout``)."""
        self._boot_wait_over = True
        for supervisor in list(self.supervisors.values()):
            await supervisor.handle(BootWaitOver(now_utc()))

    async def supervise(self, edge: Document, *, linking: bool = False) -> EdgeSupervisor:
        """The edge's supervisor, created on first need (by boot, by the configuration
        watcher, or by its first link: ``linking``). Created after the boot wait and not
        by a link, it awaits its edge at once: a location whose edge never connects fails
        over after its ``timeout`` like one whose edge failed (or, with failover off,
        says that nobody runs it)."""
        supervisor, created = await self._supervisor_for(edge)
        if created and self._boot_wait_over and not linking:
            await supervisor.handle(LocationCreated(now_utc()))
        return supervisor

    async def _supervisor_for(self, edge: Document) -> tuple[EdgeSupervisor, bool]:
        async with self._lock:
            supervisor = self.supervisors.get(edge.id)
            if supervisor is not None:
                return supervisor, False
            policy = edge_policy(edge)
            persisted = await load_persisted(self._store, edge.id)
            state = SupervisorState.at_master_boot(persisted, policy, now_utc())
            supervisor = EdgeSupervisor(
                edge.id,
                state,
                store=self._store,
                handover=self._handover,
                health=self._health,
                writer=self._writer,
                tasks=self._tasks,
                on_handover=self._on_handover,
            )
            self.supervisors[edge.id] = supervisor
            self._api_urls[edge.id] = edge.body.get("api_url")
            self._policies[edge.id] = policy
            self.windows.schedule(edge.id, policy.window)
            return supervisor, True

    async def sync(self, edges: Sequence[Document]) -> list[str]:
        """Follow the edges' documents as they are now; returns the ids of edges deleted."""
        for edge in edges:
            if edge.id not in self.supervisors:
                await self.supervise(edge)
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
        removed = [e for e in self.supervisors if e not in known]
        for edge_id in removed:
            self.supervisors.pop(edge_id).close()
            self.windows.schedule(edge_id, None)
            self._api_urls.pop(edge_id, None)
        return removed

    def facts(self, runs_here: Callable[[str], bool]) -> list[LocationFacts]:
        """Every supervised location as decided now, for the per-location metrics."""
        return [
            LocationFacts(
                edge_id,
                controlled_here=runs_here(edge_id),
                controller=(control := supervisor.state.control).controller,
                online=control.online,
                epoch=control.epoch,
                failover_pending=control.failover_deadline is not None,
                failover=supervisor.state.policy.failover,
                decided_at=control.since,
            )
            for edge_id, supervisor in list(self.supervisors.items())
        ]

    def close(self) -> None:
        self.windows.shutdown()
        for supervisor in self.supervisors.values():
            supervisor.close()

    async def _window_opened(self, edge_id: str) -> None:
        supervisor = self.supervisors.get(edge_id)
        if supervisor is not None:
            await supervisor.handle(WindowOpened(now_utc()))
