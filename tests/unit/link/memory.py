"""An in-memory `FrameTransport` pair: two queues, no sockets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from app.link import TransportClosed

_CLOSED = object()


@dataclass
class _Channel:
    closed: bool = False
    close_code: int | None = None


class MemoryTransport:
    """One end of a pair; closing either end closes both, like a websocket."""

    def __init__(
        self, inbox: asyncio.Queue[object], outbox: asyncio.Queue[object], channel: _Channel
    ) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._channel = channel

    @property
    def close_code(self) -> int | None:
        return self._channel.close_code

    async def send(self, text: str) -> None:
        if self._channel.closed:
            raise TransportClosed("closed")
        self._outbox.put_nowait(text)

    async def recv(self) -> str | bytes:
        item = await self._inbox.get()
        if item is _CLOSED:
            self._inbox.put_nowait(_CLOSED)
            raise TransportClosed("closed")
        assert isinstance(item, str | bytes)
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._channel.closed:
            return
        self._channel.closed = True
        self._channel.close_code = code
        self._inbox.put_nowait(_CLOSED)
        self._outbox.put_nowait(_CLOSED)


def memory_pair() -> tuple[MemoryTransport, MemoryTransport]:
    first: asyncio.Queue[object] = asyncio.Queue()
    second: asyncio.Queue[object] = asyncio.Queue()
    channel = _Channel()
    return MemoryTransport(first, second, channel), MemoryTransport(second, first, channel)
