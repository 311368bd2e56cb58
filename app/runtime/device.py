"""A base class for drivers of devices reached over one TCP connection."""

from __future__ import annotations

from typing import ClassVar

from app.runtime.driver import Driver, ModuleContext
from app.runtime.transports import (
    Backoff,
    DelimiterFramer,
    FrameTooLong,
    NotConnected,
    RequestQueue,
    TcpClient,
)


class DeviceDriver(Driver):
    """Keeps a connection to the module's ``ip``:``port`` while the module runs.

    The connection is reopened with backoff whenever it drops, and the status
    variable ``connected`` follows it. The byte stream is cut into frames at
    :attr:`delimiter`; :meth:`send_request` pairs a request with the next frame, and
    frames nobody asked for go to :meth:`on_frame`. Subclasses that override
    ``on_start`` or ``on_stop`` call ``super()`` first.

    Settings: ``request_timeout`` (seconds, default 5), ``reconnect_delay`` and
    ``reconnect_max`` (the first and the longest wait between connection attempts,
    default 0.2 and 10 seconds).
    """

    engine_base = True
    delimiter: ClassVar[bytes] = b"\n"

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self._client: TcpClient | None = None
        self._prepare()

    async def on_start(self) -> None:
        if not self.ip or self.port is None:
            raise ValueError(f"{type(self).__name__} needs the module's ip and port")
        self._prepare()
        self.status["connected"] = False
        self._client = TcpClient(
            self.ip,
            self.port,
            on_data=self._received,
            on_connection=self._connection_changed,
            backoff=Backoff(
                initial=float(self.setting("reconnect_delay", 0.2)),
                maximum=float(self.setting("reconnect_max", 10.0)),
            ),
        )
        await self._client.start()

    async def on_stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.stop()
        self._requests.fail_all(NotConnected("the module stopped"))
        self.status["connected"] = False

    async def send_request(self, data: bytes, *, timeout: float | None = None) -> bytes:
        """Send ``data`` (delimiter included) and return the device's next frame."""
        client = await self._connected_client()
        return await self._requests.request(lambda: client.write(data), timeout=timeout)

    async def send_bytes(self, data: bytes) -> None:
        """Send ``data`` without waiting for an answer."""
        client = await self._connected_client()
        await client.write(data)

    def on_frame(self, frame: bytes) -> None:
        """A frame the device sent on its own; override to turn it into status."""
        self.logger.debug("unsolicited frame: %r", frame)

    def _received(self, data: bytes) -> None:
        try:
            frames = self._framer.feed(data)
        except FrameTooLong as exc:
            self.logger.warning("%s", exc)
            frames = exc.frames
        for frame in frames:
            self._requests.resolve(frame)

    def _connection_changed(self, up: bool) -> None:
        self.status["connected"] = up
        if not up:
            self._framer.reset()
            self._requests.fail_all(NotConnected("the connection to the device dropped"))

    def _prepare(self) -> None:
        """A clean stream and request queue, following the current settings."""
        self._framer = DelimiterFramer(self.delimiter)
        self._request_timeout = float(self.setting("request_timeout", 5.0))
        self._requests = RequestQueue(self._request_timeout, on_unsolicited=self.on_frame)

    async def _connected_client(self) -> TcpClient:
        """The client, once connected.

        A command issued just after a start or a drop waits for the connection, up
        to the request timeout, instead of failing at once.
        """
        client = self._client
        if client is None:
            raise NotConnected(f"module {self.id} is not running")
        try:
            await client.wait_connected(self._request_timeout)
        except TimeoutError:
            raise NotConnected(f"cannot connect to {self.ip}:{self.port}") from None
        return client
