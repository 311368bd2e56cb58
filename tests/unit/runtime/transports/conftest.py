from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from app.runtime.transports import Backoff, TcpClient
from app.sim.line_device import LineDevice

ClientFactory = Callable[..., TcpClient]


@pytest.fixture
async def device() -> AsyncIterator[LineDevice]:
    device = LineDevice(name="Display_1")
    await device.start()
    yield device
    await device.stop()


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """Builds clients of a loopback port that reconnect within milliseconds; stops them after."""
    made: list[TcpClient] = []

    def make(port: int, **options: Any) -> TcpClient:
        options.setdefault("on_data", lambda _data: None)
        options.setdefault("backoff", Backoff(initial=0.01, maximum=0.05))
        client = TcpClient("127.0.0.1", port, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.stop()
