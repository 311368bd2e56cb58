"""The master's side of each link going up and down (the ``LinkListener`` of EdgeLinks)."""

from __future__ import annotations

import logging

from app.control.clock import now_utc
from app.control.supervisor import DuplicateRefused, LinkDown, LinkUp
from app.errors import NotFound
from app.link import Hello, LinkConnection
from app.link.ops import STATUS
from app.master.admissions import AdmissionGate
from app.master.boot import MasterBoot
from app.master.duplicates import Duplicate
from app.master.edges import SupervisedEdges
from app.master.links import Admission, LinkTable
from app.master.remote import DebugRelay, StatusMirror
from app.metrics import Metrics
from app.services.catalog import EDGE, Catalog
from app.store.base import DocumentNotFound, Store, StoreError

log = logging.getLogger(__name__)


class LinkLifecycle:
    """Admits an edge under its supervisor, then follows its link up and down."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: Catalog,
        metrics: Metrics,
        boot: MasterBoot,
        edges: SupervisedEdges,
        links: LinkTable,
        mirror: StatusMirror,
        debug: DebugRelay,
        gate: AdmissionGate,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._metrics = metrics
        self._boot = boot
        self._edges = edges
        self._links = links
        self._mirror = mirror
        self._debug = debug
        self._gate = gate

    async def admit(self, hello: Hello) -> Admission:
        async with self._gate.admitting():
            return await self._admit(hello)

    async def _admit(self, hello: Hello) -> Admission:
        try:
            edge = await self._store.get(hello.edge_id)
        except DocumentNotFound:
            raise NotFound(f"edge {hello.edge_id!r} does not exist") from None
        supervisor = await self._edges.supervise(edge, linking=True)
        booting = self._boot.booting
        control = await supervisor.admit(
            LinkUp(now_utc(), devices_loaded=hello.devices_loaded, master_booting=booting)
        )
        if hello.commit and edge.body.get("commit") != hello.commit:
            try:
                await self._catalog.set_maintained(EDGE, edge.id, commit=hello.commit)
            except StoreError as exc:  # the next connection records it
                log.warning("edge %s: its commit is not recorded: %s", edge.id, exc)
        return Admission(master_booting=self._boot.booting, control=control)

    async def link_up(self, edge_id: str, link: LinkConnection, hello: Hello) -> None:
        self._metrics.links.set(len(self._links.connected()))
        self._boot.link_changed()
        supervisor = self._edges.get(edge_id)
        if supervisor is not None:
            await supervisor.linked()
        self._debug.resubscribe(link)
        await self._refresh_mirror(edge_id, link)

    async def link_down(self, edge_id: str) -> None:
        self._metrics.links.set(len(self._links.connected()))
        supervisor = self._edges.get(edge_id)
        if supervisor is not None:
            await supervisor.handle(LinkDown(now_utc()))

    async def duplicate_refused(self, edge_id: str, duplicate: Duplicate, *, first: bool) -> None:
        """Count every refusal; record the first of each duplicate process as an event."""
        self._metrics.link_duplicates.labels(edge_id).inc()
        supervisor = self._edges.get(edge_id)
        if not first or supervisor is None:
            return
        holder = duplicate.holder
        reason = (
            f"a second process authenticated as this edge (instance {duplicate.instance_id}, "
            f"from {duplicate.address}) while the link of instance {holder.instance_id} (from "
            f"{holder.address}) is alive: refused as a duplicate; the first keeps the link"
        )
        try:
            await supervisor.handle(DuplicateRefused(duplicate.first_at, reason))
        except StoreError as exc:
            log.warning("edge %s: the duplicate is not recorded: %s", edge_id, exc)

    async def _refresh_mirror(self, edge_id: str, link: LinkConnection) -> None:
        """Ask the edge for the full status of its modules (after connect or handover)."""
        try:
            modules = await STATUS.call(link, {})
        except Exception as exc:
            log.info("no status from edge %s: %s", edge_id, exc)
            return
        for module_id, info in modules.items():
            self._mirror.replace(module_id, info.get("state", {}), info.get("funcs", {}))
