"""A service without any device: measures the engine's own overhead, and serves tests."""

from __future__ import annotations

import asyncio
from typing import Any

from app.runtime import Driver


class Echo(Driver):
    """Answers at once, fails on demand and sets any status variable it is given."""

    async def echo(self, value: Any) -> Any:
        """Return ``value`` unchanged."""
        return value

    async def fail(self, message: str) -> None:
        """Raise ``RuntimeError(message)``."""
        raise RuntimeError(message)

    async def sleep(self, seconds: float) -> float:
        """Return ``seconds`` after waiting that long."""
        await asyncio.sleep(seconds)
        return seconds

    async def set(self, name: str, value: Any) -> None:
        """Set the status variable ``name`` to ``value``."""
        self.status[name] = value
