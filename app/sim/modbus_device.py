"""A Modbus TCP device (a lighting or HVAC controller), served by pymodbus.

Coils, discrete inputs, holding and input registers start at address 0 and answer
every unit id. A restart comes back with all values cleared, like a power cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from app.sim.process import argument_parser, run

_ANY_UNIT = 0
_READ_COILS = 1
_WRITE_COILS = 15
_READ_HOLDING_REGISTERS = 3
_WRITE_HOLDING_REGISTERS = 16


class ModbusDevice:
    """A pymodbus TCP server whose memory the test can read and write directly."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, coils: int = 64, registers: int = 64
    ) -> None:
        if coils < 1 or registers < 1:
            raise ValueError("a device needs at least one coil and one register")
        self.host = host
        self.port = port
        self.coils = coils
        self.registers = registers
        self._server: ModbusTcpServer | None = None

    async def start(self) -> None:
        """Listen; ``port`` then holds the bound port, which a restart reuses."""
        if self._server is not None:
            return
        server = ModbusTcpServer(self._memory(), address=(self.host, self.port))
        await server.serve_forever(background=True)
        listener = server.transport
        if not isinstance(listener, asyncio.Server):
            raise TypeError(f"pymodbus listens with {type(listener).__name__}, not a server")
        self.port = listener.sockets[0].getsockname()[1]
        self._server = server

    async def stop(self) -> None:
        """Stop listening and close every client connection."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]  # unannotated upstream

    async def read_coils(self, address: int, count: int = 1) -> list[bool]:
        self._check_range(address, count, self.coils)
        values = await self._running().async_getValues(_ANY_UNIT, _READ_COILS, address, count)
        return [bool(value) for value in values]

    async def write_coils(self, address: int, values: Sequence[bool]) -> None:
        self._check_range(address, len(values), self.coils)
        await self._running().async_setValues(_ANY_UNIT, _WRITE_COILS, address, list(values))

    async def read_registers(self, address: int, count: int = 1) -> list[int]:
        """Read holding registers."""
        self._check_range(address, count, self.registers)
        server = self._running()
        values = await server.async_getValues(_ANY_UNIT, _READ_HOLDING_REGISTERS, address, count)
        return [int(value) for value in values]

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        """Write holding registers (16-bit unsigned values)."""
        self._check_range(address, len(values), self.registers)
        server = self._running()
        await server.async_setValues(_ANY_UNIT, _WRITE_HOLDING_REGISTERS, address, list(values))

    def _memory(self) -> SimDevice:
        """Separate blocks for the four tables, each starting at address 0."""

        def bits() -> list[SimData]:
            return [SimData(0, values=[False] * self.coils, datatype=DataType.BITS)]

        def words() -> list[SimData]:
            return [SimData(0, count=self.registers, values=0, datatype=DataType.REGISTERS)]

        return SimDevice(id=_ANY_UNIT, simdata=(bits(), bits(), words(), words()))

    def _running(self) -> ModbusTcpServer:
        if self._server is None:
            raise RuntimeError("the Modbus device is not running")
        return self._server

    @staticmethod
    def _check_range(address: int, count: int, size: int) -> None:
        if address < 0 or count < 1 or address + count > size:
            raise IndexError(
                f"addresses {address}..{address + count - 1} are outside 0..{size - 1}"
            )


def main() -> None:
    parser = argument_parser("A Modbus TCP device with coils and holding registers.", "modbus")
    parser.add_argument("--coils", type=int, default=64)
    parser.add_argument("--registers", type=int, default=64)
    args = parser.parse_args()
    device = ModbusDevice(args.host, args.port, coils=args.coils, registers=args.registers)
    run(device, args.name)


if __name__ == "__main__":
    main()
