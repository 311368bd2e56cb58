"""One engine process: the shared services plus the role (master or edge) it plays."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from starlette.websockets import WebSocket

from app.metrics import Metrics
from app.proxy_client import ProxyClient
from app.runtime.handle import ModuleLookup
from app.runtime.manager import ModuleManager
from app.runtime.repository import DriverRepository
from app.services.auth import Authenticator
from app.services.catalog import Catalog
from app.services.certificates import CertificateExpiry
from app.services.control import ControlService, PlacementSource
from app.services.housekeeping import Housekeeping, Retention
from app.services.modules import ModuleService
from app.services.operations import Operations
from app.services.secrets import EdgeSecrets
from app.services.tasks import BackgroundTasks
from app.settings import Settings
from app.store import open_store
from app.store.base import Store


def bundled_drivers() -> Path:
    """The bundled driver repository a fresh ``ENGINE_DRIVERS_PATH`` is seeded from.

    Package data (``app/drivers``), so a checkout, an installed package and the
    container image all find it in the same place.
    """
    return Path(__file__).resolve().parent / "drivers"


@dataclass
class BootState:
    """Where boot is; ``/api/ready`` answers from it."""

    phase: str = "starting"
    ready: bool = False
    started_at: float = field(default_factory=time.time)
    summary: dict[str, Any] = field(default_factory=dict)
    #: The role's estimate of seconds until ready, for ``Retry-After``.
    expected_wait_s: float = 1.0

    def advance(self, phase: str) -> None:
        self.phase = phase

    def complete(self, **summary: Any) -> None:
        self.phase = "ready"
        self.summary = {"boot_seconds": round(time.time() - self.started_at, 3), **summary}
        self.ready = True


class Role(Protocol):
    """What the master and the edge each add on top of the shared services."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def live_counts(self) -> dict[str, Any]:
        """The role's part of ``/api/ready``, read now."""
        ...


class LinkEndpoint(Protocol):
    """Serves ``WS /api/edge/link``: the master's edge links; an edge refuses it."""

    async def serve(self, websocket: WebSocket) -> None: ...


class Services:
    """What every role shares, built before the role (see the roles' ``compose``)."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.database_url, replica=settings.is_edge)
        self.metrics = Metrics()
        self.metrics.describe_build("edge" if settings.is_edge else "master")
        self.boot = BootState()
        #: Every long-lived task of the role: one that dies makes ``/api/ready`` fail.
        self.tasks = BackgroundTasks(on_death=self.metrics.tasks_dead.set)
        self.catalog = Catalog(self.store, max_document_bytes=settings.max_document_bytes)
        self.auth = Authenticator(self.store, self.catalog)
        self.catalog.on_change = self.auth.changed
        self.secrets = EdgeSecrets(self.store)
        self.certificates = CertificateExpiry(self.metrics, warning_s=settings.tls_expiry_warning_s)
        self.certificates.load_own(settings.tls_cert)
        self.repository = DriverRepository(settings.drivers_path, bundled_drivers())
        self.housekeeping = Housekeeping(
            self.store,
            Retention(
                tombstones_s=settings.tombstone_retention_s,
                events_max=settings.control_events_max,
                events_max_age_s=settings.control_events_max_age_s,
            ),
            interval_s=settings.housekeeping_interval_s,
            tasks=self.tasks,
            # The master writes the control history; edges hold a replica of it.
            trim_events=not settings.is_edge,
            on_purged=self.metrics.tombstones_purged.inc,
            on_pruned=self.metrics.control_events_pruned.inc,
        )
        self._proxy_client: ProxyClient | None = None
        self._http_client: httpx.AsyncClient | None = None

    def manager(self, lookup: ModuleLookup | None = None) -> ModuleManager:
        """The module runtime, finding what runs elsewhere through ``lookup``."""
        return ModuleManager(
            self.repository, exec_timeout=self.settings.request_timeout_s, lookup=lookup
        )

    def proxy_client(self) -> ProxyClient:
        """The one pooled client used to reverse-proxy requests to other servers.

        Not httpx: the same calls (``build_request``, ``send``, httpx's exceptions and
        responses) at a fourteenth of the cost (bench/README.md §8).
        """
        if self._proxy_client is None:
            self._proxy_client = ProxyClient(
                timeout=self.settings.request_timeout_s + 2, connect_timeout=3.0, tls=self._tls()
            )
        return self._proxy_client

    def http_client(self) -> httpx.AsyncClient:
        """A pooled httpx client for this server's own questions to others (the witness)."""
        if self._http_client is None:
            self._http_client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.settings.request_timeout_s + 2, connect=3.0),
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                verify=self._tls() or True,
            )
        return self._http_client

    def _tls(self) -> ssl.SSLContext | None:
        """Other servers are verified against ``ENGINE_TLS_CA`` when given."""
        if self.settings.tls_ca:
            return ssl.create_default_context(cafile=str(self.settings.tls_ca))
        return None

    async def close_clients(self) -> None:
        if self._proxy_client is not None:
            await self._proxy_client.aclose()
        if self._http_client is not None:
            await self._http_client.aclose()


class Node:
    """One engine process: the shared services and the role, all given at construction
    by the role's composition root (:mod:`app.master.compose`, :mod:`app.edge.compose`)."""

    def __init__(
        self,
        services: Services,
        *,
        modules: ModuleService,
        operations: Operations,
        role: Role,
        control: ControlService,
        placement: PlacementSource,
        links: LinkEndpoint,
    ) -> None:
        self._services = services
        self.settings = services.settings
        self.store = services.store
        self.metrics = services.metrics
        self.boot = services.boot
        self.tasks = services.tasks
        self.catalog = services.catalog
        self.auth = services.auth
        self.secrets = services.secrets
        self.certificates = services.certificates
        self.repository = services.repository
        self.housekeeping = services.housekeeping
        self.modules = modules
        self.operations = operations
        self.role = role
        #: How this server answers control questions.
        self.control = control
        #: Where requests about a location go.
        self.placement = placement
        #: Who serves the edges' control links.
        self.links = links
        self.metrics.modules_running.set_function(self.modules_running)

    def modules_running(self) -> int:
        """Modules running on this server now."""
        return len(self.modules.manager.running_ids())

    def live_counts(self) -> dict[str, Any]:
        """What ``/api/ready`` reports as it is now, not as it was at boot."""
        return {"modules_running": self.modules_running(), **self.role.live_counts()}

    def proxy_client(self) -> ProxyClient:
        """The one pooled client used to reverse-proxy requests to other servers."""
        return self._services.proxy_client()

    async def start(self) -> None:
        await self.store.open()
        await self.repository.ensure()
        await self.role.start()
        self.housekeeping.start()

    async def stop(self) -> None:
        try:
            await self.housekeeping.stop()
            await self.role.stop()
            await self.tasks.stop()
            await self.modules.manager.stop_all()
            await self._services.close_clients()
        finally:
            await self.store.close()
