"""A Modbus TCP device (a lighting or HVAC controller): coils and holding registers."""

from __future__ import annotations

import asyncio
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException
from pymodbus.pdu import ModbusPDU

from app.runtime import Driver, ModuleContext
from app.runtime.transports import Backoff, NotConnected


class ModbusError(Exception):
    """The device answered a request with a Modbus exception."""


class ModbusTcp(Driver):
    """Reads and writes coils and holding registers, and polls some of them into status.

    Settings: ``device_id`` (the unit id, default 1), ``timeout`` (seconds per
    request, default 2), ``poll`` (a list of ``{"kind": "coil" | "register",
    "address", "count", "name"}``: each becomes the status variable ``name``, a
    single value when ``count`` is 1, a list otherwise), ``poll_interval`` (seconds,
    default 1), ``reconnect_delay`` and ``reconnect_max`` (default 0.2 and 10 s).
    Status: ``connected`` and the polled values.
    """

    def __init__(self, context: ModuleContext) -> None:
        super().__init__(context)
        self._client: AsyncModbusTcpClient | None = None
        self._poll_now = asyncio.Event()

    async def on_start(self) -> None:
        if not self.ip:
            raise ValueError("ModbusTcp needs the module's ip")
        client = self._client = AsyncModbusTcpClient(
            self.ip,
            port=self.port or 502,
            timeout=float(self.setting("timeout", 2.0)),
            retries=0,
            reconnect_delay=0,  # the connection loop below reconnects, with its own backoff
            trace_connect=self._connection_changed,
        )
        self.status["connected"] = False
        self.spawn(self._keep_connected(client), name=f"{self.id}:modbus")

    async def on_stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
        self.status["connected"] = False

    async def read_coils(self, address: int, count: int = 1) -> list[bool]:
        """Read ``count`` coils from ``address``."""
        response = await self._client_up().read_coils(
            address, count=count, device_id=self._device_id()
        )
        return [bool(bit) for bit in _checked(response).bits[:count]]

    async def write_coil(self, address: int, value: bool) -> None:
        """Switch the coil at ``address`` on or off."""
        _checked(await self._client_up().write_coil(address, value, device_id=self._device_id()))
        self._poll_now.set()

    async def read_holding_registers(self, address: int, count: int = 1) -> list[int]:
        """Read ``count`` holding registers from ``address``."""
        response = await self._client_up().read_holding_registers(
            address, count=count, device_id=self._device_id()
        )
        return [int(value) for value in _checked(response).registers[:count]]

    async def write_register(self, address: int, value: int) -> None:
        """Write one 16-bit holding register."""
        _checked(
            await self._client_up().write_register(address, value, device_id=self._device_id())
        )
        self._poll_now.set()

    async def _keep_connected(self, client: AsyncModbusTcpClient) -> None:
        """Connect, poll every ``poll_interval`` (or at once after a write), reconnect."""
        backoff = Backoff(
            initial=float(self.setting("reconnect_delay", 0.2)),
            maximum=float(self.setting("reconnect_max", 10.0)),
        )
        delays = backoff.delays()
        while True:
            if not client.connected:
                if not await client.connect():
                    await asyncio.sleep(next(delays))
                    continue
                delays = backoff.delays()
            await self._poll()
            self._poll_now.clear()
            try:
                async with asyncio.timeout(float(self.setting("poll_interval", 1.0))):
                    await self._poll_now.wait()
            except TimeoutError:
                pass

    async def _poll(self) -> None:
        for entry in self.setting("poll", []):
            try:
                values: list[Any] = await self._read(entry)
            except Exception as exc:
                self.logger.warning("polling %s failed: %s", entry.get("name"), exc)
                return
            self.status[entry["name"]] = values[0] if len(values) == 1 else values

    async def _read(self, entry: dict[str, Any]) -> list[Any]:
        address, count = int(entry["address"]), int(entry.get("count", 1))
        if entry["kind"] == "coil":
            return await self.read_coils(address, count)
        if entry["kind"] == "register":
            return await self.read_holding_registers(address, count)
        raise ValueError(f"unknown poll kind {entry['kind']!r} (coil or register)")

    def _connection_changed(self, up: bool) -> None:
        self.status["connected"] = up
        if not up and self._client is not None:
            _fail_request_in_flight(self._client)

    def _client_up(self) -> AsyncModbusTcpClient:
        client = self._client
        if client is None or not client.connected:
            raise NotConnected(f"Modbus device {self.ip}:{self.port} is not connected")
        return client

    def _device_id(self) -> int:
        return int(self.setting("device_id", 1))


def _fail_request_in_flight(client: AsyncModbusTcpClient) -> None:
    """Fail the request waiting for its answer on a connection that just dropped.

    pymodbus leaves it waiting for its whole ``timeout``, though no answer can come on a
    closed connection, and holds its other requests (the poll loop's reconnect too)
    until then.
    """
    waiting = client.ctx.response_future
    if not waiting.done():
        waiting.set_exception(ConnectionException("the connection to the device dropped"))


def _checked(response: ModbusPDU) -> ModbusPDU:
    if response.isError():
        raise ModbusError(f"the device refused the request: {response}")
    return response
