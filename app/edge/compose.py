"""The edge's composition root: every collaborator built once, in dependency order."""

from __future__ import annotations

import time

from starlette.websockets import WebSocket

from app.edge.boot import EdgeBoot
from app.edge.control import EdgeControl
from app.edge.controller import EdgeController
from app.edge.follower import ReplicaFollower, ReplicationFailure, SkippedChanges
from app.edge.forwarder import StatusForwarder
from app.edge.linkstate import LinkEvents
from app.edge.placement import EdgePlacement
from app.edge.replica import replica_for
from app.edge.requests import MasterRequests
from app.edge.role import EdgeRole
from app.edge.uplink import CurrentLink, Uplink
from app.edge.watcher import ConfigurationWatcher
from app.edge.witness import MasterWitness
from app.link import CloseCode
from app.metrics import LocationFacts
from app.node import Node, Services
from app.services.modules import Locations, ModuleService
from app.services.operations import NoForwarding, Operations, no_fanout
from app.services.witness import Witness
from app.settings import Settings
from app.store.base import Store


class NoLinks:
    """An edge takes no control links: ``WS /api/edge/link`` is the master's."""

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.close(code=CloseCode.NOT_MASTER, reason="not the master")


def compose_edge(settings: Settings, store: Store | None = None) -> Node:
    """The edge: shared services, its modules and replica, the link, then each job."""
    if settings.edge_id is None:
        raise ValueError("an edge needs ENGINE_EDGE_ID")
    edge_id = settings.edge_id
    services = Services(settings, store)
    metrics = services.metrics
    modules = ModuleService(services.manager(), Locations(services.store))
    operations = Operations(
        services.catalog,
        modules,
        services.repository,
        fanout=no_fanout,
        forward=NoForwarding(),
    )
    current = CurrentLink()
    metrics.master_link_up.set_function(lambda: 1 if current.connected else 0)
    forwarder = StatusForwarder(current.get)
    controller = EdgeController(edge_id, modules, forwarder)
    skipped = SkippedChanges(metrics)
    replica = replica_for(services.store, on_progress=metrics.replica_seq.set, on_skipped=skipped)
    boot = EdgeBoot(services, modules, replica, edge_id=edge_id)
    failure = ReplicationFailure(metrics)
    follower = ReplicaFollower(
        replica, current, boot.synced, failure, retry_max_s=settings.link_retry_s
    )
    witness = MasterWitness(
        Witness(
            services.http_client(), asker=settings.node_name, timeout=settings.witness_timeout_s
        ),
        settings,
        services.store,
        controller,
        current,
        edge_id=edge_id,
    )
    events = LinkEvents(
        controller,
        witness,
        follower,
        services.repository,
        metrics,
        link_retry_s=settings.link_retry_s,
    )
    metrics.watch_locations(
        lambda: [LocationFacts(edge_id, controlled_here=controller.modules_running)]
    )
    requests = MasterRequests(
        edge_id=edge_id,
        operations=operations,
        modules=modules,
        controller=controller,
        forwarder=forwarder,
        replica=replica,
        current=current,
    )
    uplink = Uplink(
        settings,
        current=current,
        handlers=requests.handlers(),
        on_event=follower.on_event,
        listener=events,
        boot_time=time.time(),
        on_certificate=services.certificates.saw_master,
    )
    watcher = ConfigurationWatcher(services.store, metrics, services.auth, modules, controller)
    role = EdgeRole(
        metrics,
        boot,
        follower,
        forwarder,
        uplink,
        current,
        watcher,
        witness,
        services.certificates,
        services.tasks,
    )
    control = EdgeControl(
        settings,
        services.store,
        operations,
        controller,
        events,
        current,
        witness,
        skipped,
        failure,
        edge_id=edge_id,
        instance_id=uplink.instance_id,
    )
    return Node(
        services,
        modules=modules,
        operations=operations,
        role=role,
        control=control,
        placement=EdgePlacement(controller, edge_id=edge_id, master_url=settings.master_url),
        links=NoLinks(),
    )
