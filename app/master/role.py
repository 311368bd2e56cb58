"""The master role: boot in the order of DESIGN §5."""

from __future__ import annotations

import logging

from app.node import Node

log = logging.getLogger(__name__)


class MasterRole:
    """Boots the master and owns what only the master runs."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def start(self) -> None:
        node = self.node
        if node.settings.admin_token:
            node.boot.advance("bootstrapping the admin token")
            await node.auth.bootstrap_admin(node.settings.admin_token)
        node.boot.complete(role="master")
        node.metrics.ready.set(1)

    async def stop(self) -> None:
        self.node.metrics.ready.set(0)
