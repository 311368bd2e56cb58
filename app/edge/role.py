"""The edge role: boot from the local replica (DESIGN §5 edge boot)."""

from __future__ import annotations

from app.node import Node


class EdgeRole:
    """Boots an edge and owns what only an edge runs."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def start(self) -> None:
        self.node.boot.complete(role="edge", edge_id=self.node.settings.edge_id)
        self.node.metrics.ready.set(1)

    async def stop(self) -> None:
        self.node.metrics.ready.set(0)
