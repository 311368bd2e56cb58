"""The edge's replica changed: bring the running modules and cached tokens in line."""

from __future__ import annotations

import logging

from app.edge.controller import EdgeController
from app.metrics import Metrics
from app.services.auth import Authenticator
from app.services.modules import ModuleService
from app.store.base import Store

log = logging.getLogger(__name__)


class ConfigurationWatcher:
    """Follows the replica's changes; cached tokens are dropped at each one, so a user or
    token deleted on the master stops working here as soon as its deletion replicated."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        auth: Authenticator,
        modules: ModuleService,
        controller: EdgeController,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._auth = auth
        self._modules = modules
        self._controller = controller

    async def run(self) -> None:
        async for seq in self._store.subscribe():
            self._metrics.store_seq.set(seq)
            self._auth.forget()
            try:
                await self._modules.reconcile()
                if self._controller.modules_running:
                    self._controller.announce()
            except Exception:
                log.exception("applying configuration changes failed")
