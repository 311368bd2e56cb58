from __future__ import annotations

import pytest

from app.errors import Conflict, NotFound
from app.link.codes import ErrorCode
from app.link.messages import Response
from app.link.pending import (
    LinkClosed,
    LinkRequestError,
    LinkTimeout,
    PendingRequests,
    error_code,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pending(clock: FakeClock) -> PendingRequests:
    return PendingRequests("edge 'edge-1'", clock=clock)


async def test_ids_increase_and_responses_settle_out_of_order(pending: PendingRequests) -> None:
    opened = [pending.open("status", 5.0) for _ in range(3)]

    assert [request_id for request_id, _ in opened] == [1, 2, 3]
    for request_id, _ in reversed(opened):
        assert pending.resolve(Response.success(request_id, request_id * 10))
    assert [reply.result() for _, reply in opened] == [10, 20, 30]
    assert len(pending) == 0


async def test_error_response_fails_with_the_peer_code(pending: PendingRequests) -> None:
    request_id, reply = pending.open("exec", 5.0)

    pending.resolve(Response.failure(request_id, "bad_args", "power() takes 1 argument"))

    error = reply.exception()
    assert isinstance(error, LinkRequestError)
    assert (error.code, error.detail) == ("bad_args", "power() takes 1 argument")


async def test_unknown_and_settled_ids_are_ignored(pending: PendingRequests) -> None:
    request_id, reply = pending.open("status", 5.0)
    assert pending.resolve(Response.success(request_id, 1))

    assert not pending.resolve(Response.success(request_id, 2))
    assert not pending.resolve(Response.success(99, 2))
    assert reply.result() == 1


async def test_cancelled_caller_is_ignored(pending: PendingRequests) -> None:
    request_id, reply = pending.open("status", 5.0)
    reply.cancel()

    assert not pending.resolve(Response.success(request_id, 1))


async def test_expire_fails_only_requests_past_their_deadline(
    pending: PendingRequests, clock: FakeClock
) -> None:
    short_id, short = pending.open("status", 1.0)
    long_id, long = pending.open("exec", 10.0)

    assert pending.expire(clock.now + 0.5) == []
    assert pending.expire(clock.now + 1.0) == [short_id]

    error = short.exception()
    assert isinstance(error, LinkTimeout)
    assert str(error) == "edge 'edge-1' did not answer 'status' within 1 s"
    assert error.status == 504
    assert not long.done()
    assert not pending.resolve(Response.success(short_id, "late"))
    assert pending.resolve(Response.success(long_id, "on time"))


async def test_fail_all_fails_every_request_at_once(pending: PendingRequests) -> None:
    replies = [pending.open("status", 5.0)[1] for _ in range(5)]

    pending.fail_all(LinkClosed("edge 'edge-1'"))

    assert len(pending) == 0
    for reply in replies:
        error = reply.exception()
        assert isinstance(error, LinkClosed)
        assert error.status == 503
        assert str(error) == "edge 'edge-1' is not connected"


async def test_discard_forgets_a_request(pending: PendingRequests) -> None:
    request_id, _ = pending.open("status", 5.0)

    pending.discard(request_id)

    assert len(pending) == 0
    assert not pending.resolve(Response.success(request_id, 1))


class ConflictOfSomeKind(Conflict):
    """A domain error the link's table does not list: it travels as its base's code."""


def test_wire_codes_come_from_the_table_not_class_names() -> None:
    assert error_code(NotFound("no module")) == ErrorCode.NOT_FOUND
    assert ErrorCode.NOT_FOUND.value == "NotFound"  # the wire spelling stays
    assert error_code(ConflictOfSomeKind("no")) == ErrorCode.CONFLICT
    assert error_code(LinkClosed("edge 'e1'")) == "LinkClosed"
    assert error_code(LinkRequestError("bad_args", "x")) == "bad_args"
