from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.runtime.transports import (
    DelimiterFramer,
    NotConnected,
    RequestQueue,
    RequestTimeout,
)
from app.sim.line_device import LineDevice
from tests.support.wait import wait_until
from tests.unit.runtime.transports.conftest import ClientFactory


class FakeDevice:
    """Answers each command on the next loop iteration and checks they never overlap."""

    def __init__(self, queue: RequestQueue) -> None:
        self.queue = queue
        self.commands: list[bytes] = []
        self.awaiting_reply = 0
        self.most_awaiting_reply = 0

    def send(self, command: bytes) -> Callable[[], Awaitable[None]]:
        async def send() -> None:
            self.commands.append(command)
            self.awaiting_reply += 1
            self.most_awaiting_reply = max(self.most_awaiting_reply, self.awaiting_reply)
            asyncio.get_running_loop().call_soon(self.reply, command)

        return send

    def reply(self, command: bytes) -> None:
        self.awaiting_reply -= 1
        self.queue.resolve(b"re:" + command)


async def silent() -> None:
    """A command the device never answers."""


def never_finishing(sent: list[str], name: str) -> Callable[[], Awaitable[None]]:
    async def send() -> None:
        sent.append(name)

    return send


async def test_a_request_returns_the_reply_resolved_for_it() -> None:
    queue = RequestQueue()
    device = FakeDevice(queue)

    assert await queue.request(device.send(b"power?")) == b"re:power?"


async def test_requests_take_turns_in_arrival_order() -> None:
    queue = RequestQueue()
    device = FakeDevice(queue)
    commands = [f"cmd{i}".encode() for i in range(5)]

    replies = await asyncio.gather(*(queue.request(device.send(c)) for c in commands))

    assert device.commands == commands
    assert replies == [b"re:" + c for c in commands]
    assert device.most_awaiting_reply == 1


async def test_a_reply_may_arrive_before_send_returns() -> None:
    queue = RequestQueue()

    async def send_and_answer_at_once() -> None:
        queue.resolve(b"fast")

    assert await queue.request(send_and_answer_at_once) == b"fast"


async def test_a_timeout_raises_and_lets_the_next_request_proceed() -> None:
    queue = RequestQueue(timeout=0.05)
    device = FakeDevice(queue)

    stuck = asyncio.create_task(queue.request(silent))
    # Its own deadline is not the one under test: a stall under load must not fail it.
    answered = asyncio.create_task(queue.request(device.send(b"next"), timeout=60))

    with pytest.raises(RequestTimeout) as raised:
        await stuck
    assert isinstance(raised.value, TimeoutError)
    assert await answered == b"re:next"


async def test_a_per_request_timeout_overrides_the_default() -> None:
    queue = RequestQueue(timeout=60)

    with pytest.raises(RequestTimeout, match=r"0\.05 s"):
        await queue.request(silent, timeout=0.05)


async def test_a_timeout_raised_by_send_itself_is_not_a_request_timeout() -> None:
    queue = RequestQueue()

    async def send() -> None:
        raise TimeoutError("socket")

    with pytest.raises(TimeoutError, match="socket") as raised:
        await queue.request(send)
    assert not isinstance(raised.value, RequestTimeout)


async def test_frames_without_a_waiting_request_go_to_on_unsolicited() -> None:
    unsolicited: list[bytes] = []
    queue = RequestQueue(on_unsolicited=unsolicited.append)
    device = FakeDevice(queue)

    queue.resolve(b"input changed")
    await queue.request(device.send(b"x"))
    queue.resolve(b"late")

    assert unsolicited == [b"input changed", b"late"]


async def test_a_frame_without_a_listener_is_dropped() -> None:
    queue = RequestQueue()
    device = FakeDevice(queue)

    queue.resolve(b"nobody asked")

    assert await queue.request(device.send(b"x")) == b"re:x"


async def test_frames_the_request_does_not_accept_are_unsolicited() -> None:
    unsolicited: list[bytes] = []
    queue = RequestQueue(on_unsolicited=unsolicited.append)

    async def send() -> None:
        queue.resolve(b"volume 3")
        queue.resolve(b"power on")

    reply = await queue.request(send, accept=lambda frame: frame.startswith(b"power"))

    assert reply == b"power on"
    assert unsolicited == [b"volume 3"]


async def test_fail_all_fails_the_request_in_flight_and_those_waiting() -> None:
    queue = RequestQueue()
    sent: list[str] = []
    in_flight = asyncio.create_task(queue.request(never_finishing(sent, "a")))
    waiting = [asyncio.create_task(queue.request(never_finishing(sent, n))) for n in "bc"]
    await wait_for_sent(sent, 1)

    queue.fail_all(NotConnected("link down"))

    for task in [in_flight, *waiting]:
        with pytest.raises(NotConnected, match="link down"):
            await task
    assert sent == ["a"]
    device = FakeDevice(queue)
    assert await queue.request(device.send(b"after")) == b"re:after"


async def test_fail_all_during_send_leaves_no_unretrieved_error(
    loop_errors: list[dict[str, Any]],
) -> None:
    async def send_failing_after_fail_all() -> None:
        queue = RequestQueue()
        sending = asyncio.Event()
        release = asyncio.Event()

        async def send() -> None:
            sending.set()
            await release.wait()
            raise ConnectionResetError("peer gone")

        request = asyncio.create_task(queue.request(send))
        await sending.wait()
        queue.fail_all(NotConnected("link down"))
        release.set()
        await request

    with pytest.raises(ConnectionResetError):
        await send_failing_after_fail_all()
    await asyncio.sleep(0)  # lets the loop drop its last handle on the finished request
    gc.collect()

    assert loop_errors == []


async def test_a_cancelled_caller_in_flight_lets_the_next_proceed() -> None:
    queue = RequestQueue()
    sent: list[str] = []
    device = FakeDevice(queue)
    in_flight = asyncio.create_task(queue.request(never_finishing(sent, "a")))
    following = asyncio.create_task(queue.request(device.send(b"b")))
    await wait_for_sent(sent, 1)

    in_flight.cancel()

    assert await following == b"re:b"
    assert in_flight.cancelled()


async def test_a_cancelled_waiting_caller_gives_up_its_place() -> None:
    queue = RequestQueue()
    sent: list[str] = []
    first = asyncio.create_task(queue.request(never_finishing(sent, "a")))
    dropped = asyncio.create_task(queue.request(never_finishing(sent, "b")))
    last = asyncio.create_task(queue.request(never_finishing(sent, "c")))
    await wait_for_sent(sent, 1)

    dropped.cancel()
    queue.resolve(b"reply a")

    assert await first == b"reply a"
    await wait_for_sent(sent, 2)
    queue.resolve(b"reply c")
    assert await last == b"reply c"
    assert sent == ["a", "c"]


async def test_a_caller_cancelled_as_its_turn_comes_passes_the_turn_on() -> None:
    queue = RequestQueue()
    sent: list[str] = []
    first = asyncio.create_task(queue.request(never_finishing(sent, "a")))
    unlucky = asyncio.create_task(queue.request(never_finishing(sent, "b")))
    last = asyncio.create_task(queue.request(never_finishing(sent, "c")))
    await wait_for_sent(sent, 1)

    queue.resolve(b"reply a")
    await asyncio.sleep(0)  # one step: the first request finishes and hands its turn on
    assert first.done()
    unlucky.cancel()  # its turn has come, but it has not run yet

    await wait_for_sent(sent, 2)
    queue.resolve(b"reply c")
    assert await last == b"reply c"
    assert sent == ["a", "c"]
    assert unlucky.cancelled()


def test_rejects_a_timeout_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        RequestQueue(timeout=0)


async def test_drives_a_line_device_over_tcp(
    device: LineDevice, make_client: ClientFactory
) -> None:
    queue = RequestQueue(timeout=2)
    framer = DelimiterFramer()

    def on_data(data: bytes) -> None:
        for frame in framer.feed(data):
            queue.resolve(frame)

    client = make_client(device.port, on_data=on_data)
    await client.start()
    await client.wait_connected(timeout=5)

    def line(command: bytes) -> Callable[[], Awaitable[None]]:
        return lambda: client.write(command + b"\r\n")

    replies = await asyncio.gather(queue.request(line(b"one")), queue.request(line(b"two")))

    assert list(replies) == [b"one", b"two"]
    assert device.received == ["one", "two"]


async def wait_for_sent(sent: list[str], count: int) -> None:
    await wait_until(lambda: len(sent) >= count, timeout=5, message=f"{count} commands sent")


@pytest.fixture
async def loop_errors() -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    return errors
