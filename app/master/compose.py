"""The master's composition root: every collaborator built once, in dependency order."""

from __future__ import annotations

from app.master.admissions import AdmissionGate
from app.master.boot import MasterBoot
from app.master.control import MasterControl
from app.master.edges import SupervisedEdges
from app.master.events import ModuleEvents
from app.master.forward import EdgeReloads, LinkForwarder
from app.master.handover import ModuleHandover
from app.master.links import MISSED_PINGS, EdgeLinks, LinkTable
from app.master.listener import LinkLifecycle
from app.master.placement import MasterPlacement
from app.master.remote import DebugRelay, RemoteModules, StatusMirror
from app.master.requests import ReplicaFeed
from app.master.role import MasterRole
from app.master.watcher import ConfigurationWatcher
from app.master.witnesses import WitnessAsker
from app.metrics import Metrics, handover_reason
from app.node import Node, Services
from app.services.control import StoreHealth
from app.services.modules import Locations, ModuleService
from app.services.operations import Operations
from app.services.witness import Witness
from app.settings import Settings
from app.store.base import ReplicaStore, Store


def store_health(metrics: Metrics) -> StoreHealth:
    """Whether the store takes control writes, with the metrics following it."""

    def changed(writable: bool) -> None:
        metrics.store_writable.set(1 if writable else 0)
        if not writable:
            metrics.store_write_failures.inc()

    return StoreHealth(changed)


def compose_master(settings: Settings, store: Store | None = None) -> Node:
    """The master: shared services, the links and remote modules, then each job."""
    services = Services(settings, store)
    locations = Locations(services.store)
    # A duplicate's holder keeps its place while it would reconnect after a blip.
    hold_s = 2 * settings.link_retry_s + MISSED_PINGS * settings.ping_interval_s
    links = LinkTable(services.secrets, duplicate_hold_s=hold_s)
    mirror, debug = StatusMirror(), DebugRelay()
    remote = RemoteModules(
        locations, links, mirror, debug, default_timeout=settings.request_timeout_s
    )
    modules = ModuleService(services.manager(lookup=remote), locations)
    operations = Operations(
        services.catalog,
        modules,
        services.repository,
        fanout=EdgeReloads(modules, links),
        forward=LinkForwarder(modules, links),
    )
    health = store_health(services.metrics)
    metrics = services.metrics
    edges = SupervisedEdges(
        services.store,
        ModuleHandover(modules, links, mirror),
        health,
        services.tasks,
        on_handover=lambda edge_id, to, kind, by: metrics.handovers.labels(
            edge_id, to, handover_reason(kind, by)
        ).inc(),
    )
    metrics.watch_locations(lambda: edges.facts(modules.runs))
    boot = MasterBoot(services, modules, edges, links)
    witness = Witness(services.http_client(), asker="master", timeout=settings.witness_timeout_s)
    witnesses = WitnessAsker(
        witness,
        services.secrets,
        edges,
        links,
        interval_s=settings.ping_interval_s,
        timeout_s=settings.witness_timeout_s,
    )
    watcher = ConfigurationWatcher(
        services.store,
        services.metrics,
        modules,
        edges,
        links,
        witnesses,
        # The embedded store replicates over the links; Couchbase through XDCR.
        replicated_by_link=isinstance(services.store, ReplicaStore),
    )
    gate = AdmissionGate()
    feed = ReplicaFeed(services.store, services.metrics, gate, max_frame=settings.link_max_frame)
    listener = LinkLifecycle(
        store=services.store,
        catalog=services.catalog,
        metrics=services.metrics,
        boot=boot,
        edges=edges,
        links=links,
        mirror=mirror,
        debug=debug,
        gate=gate,
    )
    endpoint = EdgeLinks(
        secrets=services.secrets,
        table=links,
        listener=listener,
        handlers=feed.handlers,
        on_event=ModuleEvents(modules, mirror, debug),
        max_frame=settings.link_max_frame,
        request_timeout=settings.request_timeout_s,
        ping_interval=settings.ping_interval_s,
        on_refused=lambda edge_id: metrics.link_refusals.labels(edge_id or "unknown").inc(),
    )
    role = MasterRole(services, modules, boot, edges, links, witnesses, watcher)
    return Node(
        services,
        modules=modules,
        operations=operations,
        role=role,
        control=MasterControl(services, modules, edges, links, witnesses, feed, health),
        placement=MasterPlacement(services.store, modules, edges, links),
        links=endpoint,
    )
