"""A persistent TCP (or TLS) connection to one device."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from typing import TypeVar

from app.runtime.transports.backoff import Backoff
from app.runtime.transports.errors import NotConnected

logger = logging.getLogger(__name__)

_READ_SIZE = 65536

_T = TypeVar("_T")


class TcpClient:
    """Keeps a connection to ``host:port`` open until stopped.

    A background task connects, hands every received chunk to ``on_data`` and, after
    a failed attempt or a close by the device, reconnects following ``backoff``.
    ``on_connection`` hears every transition between up and down. A callback that
    raises is logged and the connection carries on: a driver bug must not take its
    device offline.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_data: Callable[[bytes], None],
        on_connection: Callable[[bool], None] | None = None,
        backoff: Backoff = Backoff(),
        connect_timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._on_data = on_data
        self._on_connection = on_connection
        self._backoff = backoff
        self._connect_timeout = connect_timeout
        self._tls = tls
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._up = asyncio.Event()

    def __repr__(self) -> str:
        return f"TcpClient({self._host}:{self._port})"

    @property
    def connected(self) -> bool:
        return self._writer is not None

    async def start(self) -> None:
        """Begin connecting in the background; returns at once. Idempotent."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=repr(self))

    async def stop(self) -> None:
        """Stop retrying and close the connection; the device has seen the close on return."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def write(self, data: bytes) -> None:
        """Send bytes to the device, waiting while its socket buffer is full."""
        writer = self._writer
        if writer is None or writer.is_closing():
            raise NotConnected(f"{self!r} is not connected")
        writer.write(data)
        try:
            await writer.drain()
        except ConnectionError as exc:
            raise NotConnected(f"{self!r} lost its connection while writing") from exc

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the connection is up; raises ``TimeoutError`` after ``timeout``."""
        async with asyncio.timeout(timeout):
            await self._up.wait()

    async def _run(self) -> None:
        delays = self._backoff.delays()
        failures = 0
        while True:
            try:
                reader, writer = await self._open()
            except OSError as exc:
                self._log_failure(exc, failures)
                failures += 1
            else:
                failures = 0
                if await self._session(reader, writer) >= self._backoff.maximum:
                    delays = self._backoff.delays()
            await asyncio.sleep(next(delays))

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(self._connect_timeout):
            return await asyncio.open_connection(self._host, self._port, ssl=self._tls)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
        """Read until the connection ends; return how long it stayed up.

        A connection that outlived the longest backoff delay was healthy, so the next
        reconnect starts from the shortest delay; one a device closes at once does not
        reset it, which keeps a client from hammering a device that refuses it.
        """
        opened = asyncio.get_running_loop().time()
        self._set_up(writer)
        try:
            while data := await reader.read(_READ_SIZE):
                self._notify(self._on_data, data)
        except OSError as exc:
            logger.info("%r: connection failed: %s", self, exc)
        finally:
            self._set_down()
            writer.close()
            # Bounded: a TLS device that never answers the close must not hold up stop().
            with contextlib.suppress(OSError):
                async with asyncio.timeout(self._connect_timeout):
                    await writer.wait_closed()
        return asyncio.get_running_loop().time() - opened

    def _set_up(self, writer: asyncio.StreamWriter) -> None:
        logger.info("%r: connected", self)
        self._writer = writer
        self._up.set()
        self._notify_connection(True)

    def _set_down(self) -> None:
        logger.info("%r: disconnected", self)
        self._writer = None
        self._up.clear()
        self._notify_connection(False)

    def _notify_connection(self, up: bool) -> None:
        if self._on_connection is not None:
            self._notify(self._on_connection, up)

    def _notify(self, callback: Callable[[_T], None], value: _T) -> None:
        try:
            callback(value)
        except Exception:
            logger.exception("%r: %s raised", self, getattr(callback, "__qualname__", callback))

    def _log_failure(self, exc: OSError, previous_failures: int) -> None:
        """Warn about the first failed attempt in a row; later ones only clutter the log."""
        level = logging.WARNING if previous_failures == 0 else logging.DEBUG
        logger.log(level, "%r: cannot connect: %s", self, str(exc) or type(exc).__name__)
