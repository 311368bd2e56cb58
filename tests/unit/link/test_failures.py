"""Each failed link attempt is classified: did the master answer?

The exceptions are the ones the link's client really raises (checked against real
sockets in tests/unit/edge/test_uplink_failures.py); here the rules alone.
"""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime, timedelta
from typing import get_args

import httpx
import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader, InvalidMessage, InvalidStatus
from websockets.http11 import Response

from app import models
from app.link import AuthFailed, CloseCode, FrameError
from app.link.failures import (
    LINK_STATES,
    HandshakeClosed,
    LinkFailure,
    LinkReport,
    answered_by_engine,
    certificate_error,
    classify,
)

T0 = datetime(2024, 6, 5, 12, tzinfo=UTC)


def expired() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed: certificate has expired")
    error.verify_message = "certificate has expired"
    return error


def invalid_status(status: int, **headers: str) -> InvalidStatus:
    return InvalidStatus(Response(status, "", Headers(headers), b""))


def eof_message() -> InvalidMessage:
    try:
        raise InvalidMessage("did not receive a valid HTTP response") from EOFError("closed")
    except InvalidMessage as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (expired(), "tls", "certificate has expired"),
        (ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca"), "tls", "TLS"),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "unreachable", "EOF"),
        (invalid_status(403, **{"X-Engine-Node": "master"}), "refused", "HTTP 403"),
        (invalid_status(500), "refused", "HTTP 500"),
        (invalid_status(503, **{"x-engine-node": "master"}), "refused", "HTTP 503"),
        (invalid_status(502), "unreachable", "a gateway answered HTTP 502"),
        (invalid_status(504), "unreachable", "gateway"),
        (eof_message(), "unreachable", "before any HTTP answer"),
        (InvalidHeader("Upgrade"), "refused", "not a websocket"),
        (HandshakeClosed(CloseCode.AUTH_FAILED), "refused", "refused this edge's proof"),
        (HandshakeClosed(4000, "replaced"), "refused", "code 4000): replaced"),
        (HandshakeClosed(None), "unreachable", "closed during the handshake"),
        (FrameError("bad_json", "not JSON"), "refused", "bad handshake frame"),
        (AuthFailed("the master does not know this edge's secret"), "unreachable", "failed auth"),
        (TimeoutError(), "unreachable", "timed out"),
        (ConnectionRefusedError(111, "Connect call failed"), "unreachable", "Refused"),
        (socket.gaierror(-2, "Name or service not known"), "unreachable", "Name or service"),
    ],
)
def test_each_failure_says_whether_the_master_answered(
    exc: BaseException, kind: str, words: str
) -> None:
    failure = classify(exc)
    assert failure.kind == kind, failure
    assert words in failure.detail, failure
    assert failure.master_alive == (kind != "unreachable")
    assert not failure.duplicate


def test_a_duplicate_refusal_is_a_refusal_that_says_so() -> None:
    reason = "duplicate: this edge is linked from 10.0.0.7 since 12:00:03Z (instance ab)"
    failure = classify(HandshakeClosed(CloseCode.DUPLICATE, reason))
    assert (failure.kind, failure.duplicate, failure.master_alive) == ("refused", True, True)
    assert "linked from 10.0.0.7" in failure.detail


def test_a_tls_failure_is_found_behind_the_http_clients_wrapping() -> None:
    inner = expired()
    wrapped = httpx.ConnectError(str(inner))
    wrapped.__cause__ = inner
    assert certificate_error(wrapped) is inner
    assert certificate_error(httpx.ConnectError("[Errno 111] Connection refused")) is None


def test_only_a_gateway_answer_without_the_engines_header_proves_nothing() -> None:
    assert answered_by_engine(404, {})
    assert answered_by_engine(500, {})
    assert answered_by_engine(503, {"X-Engine-Node": "master"})
    assert not answered_by_engine(503, {})
    assert not answered_by_engine(502, {"Server": "nginx"})


def test_the_link_report_keeps_since_while_the_state_holds() -> None:
    report = LinkReport.at_start(T0)
    assert (report.state, report.master_alive, report.error) == ("closed", False, None)
    tls = LinkFailure("tls", "the master's certificate is not trusted: certificate has expired")
    first = report.failed(tls, T0 + timedelta(seconds=1))
    again = first.failed(tls, T0 + timedelta(seconds=2))
    assert (again.state, again.since, again.master_alive) == (
        "tls",
        T0 + timedelta(seconds=1),
        True,
    )
    assert again.error_at == T0 + timedelta(seconds=2)
    up = again.up(T0 + timedelta(seconds=3))
    assert (up.state, up.error, up.error_at, up.master_alive) == ("up", None, None, True)
    dropped = up.dropped("the link dropped (close code 1006)", T0 + timedelta(seconds=4))
    assert (dropped.state, dropped.master_alive) == ("closed", False)
    assert dropped.error == "the link dropped (close code 1006)"
    gone = dropped.failed(LinkFailure("unreachable", "timed out"), T0 + timedelta(seconds=5))
    assert (gone.state, gone.since, gone.master_alive) == (
        "unreachable",
        T0 + timedelta(seconds=5),
        False,
    )


def test_the_api_names_the_same_link_states() -> None:
    assert get_args(models.LinkState) == LINK_STATES
