"""The master's composition root: every collaborator built once, in dependency order."""

from __future__ import annotations

from app.master.forward import EdgeReloads, LinkForwarder
from app.master.links import EdgeLinks, LinkTable
from app.master.placement import MasterPlacement
from app.master.remote import DebugRelay, RemoteModules, StatusMirror
from app.master.role import MasterRole
from app.node import Node, Services
from app.services.modules import Locations, ModuleService
from app.services.operations import Operations
from app.settings import Settings
from app.store.base import Store


def compose_master(settings: Settings, store: Store | None = None) -> Node:
    """The master: shared services, then the links, remote modules and the role."""
    services = Services(settings, store)
    locations = Locations(services.store)
    links = LinkTable(services.secrets)
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
    role = MasterRole(services, modules, links, mirror, debug)
    endpoint = EdgeLinks(
        secrets=services.secrets,
        table=links,
        listener=role,
        handlers=role.handlers,
        on_event=role.on_event,
        max_frame=settings.link_max_frame,
        request_timeout=settings.request_timeout_s,
        ping_interval=settings.ping_interval_s,
    )
    return Node(
        services,
        modules=modules,
        operations=operations,
        role=role,
        control=role,
        placement=MasterPlacement(role),
        links=endpoint,
    )
