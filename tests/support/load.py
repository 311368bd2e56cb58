"""Steady request load for fault tests: every outcome recorded, nothing left hanging.

A :class:`Load` runs a few clients, each sending one request after another until the
load is stopped or its time is up. Each request has a client timeout, so a request the
server never answers shows up as a timed-out outcome instead of hanging the test, and
each outcome keeps when it was sent, so a test can look at what happened after a fault.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

import httpx

from tests.support.wait import wait_until

Send = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
"""One request of the load, sent with the client it is given."""

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request: its response, or the name of the transport error that replaced it."""

    sent_at: float
    elapsed: float
    response: httpx.Response | None
    error: str | None = None

    @property
    def status(self) -> int | None:
        return self.response.status_code if self.response is not None else None

    @property
    def ok(self) -> bool:
        return self.response is not None and self.response.is_success

    @property
    def timed_out(self) -> bool:
        return self.error is not None and "Timeout" in self.error

    @property
    def is_problem(self) -> bool:
        """An error answered as ``application/problem+json`` with a detail."""
        if self.response is None or self.response.is_success:
            return False
        if not self.response.headers.get("content-type", "").startswith(PROBLEM_JSON):
            return False
        return bool(self.response.json().get("detail"))

    def describe(self) -> str:
        if self.response is None:
            return f"{self.error} after {self.elapsed:.2f}s"
        return f"{self.status} after {self.elapsed:.2f}s: {self.response.text[:200]}"


def sent_after(outcomes: Iterable[Outcome], moment: float) -> list[Outcome]:
    return [outcome for outcome in outcomes if outcome.sent_at > moment]


class Load:
    """``clients`` concurrent loops of ``send``; use as ``async with`` around the scenario.

    ``pace`` is the shortest time between two requests of one client, so that a server
    refusing connections instantly is not hammered by a busy loop. The load stops by
    itself after ``max_duration`` seconds.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        send: Send,
        *,
        clients: int,
        client_timeout: float,
        max_duration: float = 60.0,
        pace: float = 0.01,
    ) -> None:
        self._http = http
        self._send = send
        self._clients = clients
        self._client_timeout = client_timeout
        self._max_duration = max_duration
        self._pace = pace
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.outcomes: list[Outcome] = []

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self._clients)]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Let every request in flight finish (or time out), then stop the clients."""
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    def successes_after(self, moment: float) -> int:
        return sum(outcome.ok for outcome in sent_after(self.outcomes, moment))

    async def wait_for_successes(
        self, count: int, *, after: float = 0.0, timeout: float = 20.0, what: str = "requests"
    ) -> None:
        """Wait until ``count`` requests sent after ``after`` have succeeded."""

        def enough() -> bool:
            return self.successes_after(after) >= count

        await wait_until(enough, timeout=timeout, message=f"{count} successful {what}")

    async def _client(self) -> None:
        deadline = time.monotonic() + self._max_duration
        while not self._stopping.is_set() and time.monotonic() < deadline:
            sent_at = time.monotonic()
            self.outcomes.append(await self._one(sent_at))
            elapsed = time.monotonic() - sent_at
            if elapsed < self._pace:
                await asyncio.sleep(self._pace - elapsed)

    async def _one(self, sent_at: float) -> Outcome:
        try:
            async with asyncio.timeout(self._client_timeout):
                response = await self._send(self._http)
        except TimeoutError:
            return Outcome(sent_at, time.monotonic() - sent_at, None, "ClientTimeout")
        except httpx.TransportError as exc:
            return Outcome(sent_at, time.monotonic() - sent_at, None, type(exc).__name__)
        return Outcome(sent_at, time.monotonic() - sent_at, response)
