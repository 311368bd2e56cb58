"""Why a link attempt failed, and whether the failure proves the master answers.

A failure that proves the other side exists is not an outage (README, Architecture:
"A failure that proves the master is there"). The master answered when the TLS
handshake failed on its certificate (expired, unknown CA, wrong name: ``tls``), when
it answered the link's upgrade with anything but 101, or closed the handshake itself
(a refused proof, a duplicate: ``refused``). Only when nothing answered — TCP refused,
a timeout, a name that does not resolve, a connection closed before any answer, or a
gateway's 502/503/504 that the engine did not write — is it ``unreachable``, and only
then may an edge take its devices on the seed's "on disconnected" rule.

Pure: exceptions in, a :class:`LinkFailure` out; the edge's :class:`LinkReport` keeps
the state the API shows (``link_state`` in ``/api/ready`` and ``/control``).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, get_args

from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus

from app.link.auth import AuthFailed
from app.link.codec import FrameError
from app.link.codes import CloseCode

#: The link as an edge reports it: exactly one of these (the API's ``LinkState`` in
#: ``app.models`` names the same).
LinkState = Literal["up", "closed", "refused", "tls", "unreachable"]
LINK_STATES: tuple[LinkState, ...] = get_args(LinkState)
FailureKind = Literal["refused", "tls", "unreachable"]

#: The header every answer of the engine carries (DESIGN §4).
ENGINE_HEADER = "x-engine-node"
#: What a gateway answers for a server behind it that does not answer.
GATEWAY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class LinkFailure:
    """One failed attempt: its kind, in words, and whether it was a duplicate refusal."""

    kind: FailureKind
    detail: str
    duplicate: bool = False

    @property
    def master_alive(self) -> bool:
        """The master answered: it is no outage, and nobody takes control on it."""
        return self.kind != "unreachable"


class HandshakeClosed(Exception):
    """The link's websocket closed during the handshake; ``code`` is the close frame the
    master sent (None when the connection ended without one)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"closed with code {code}" if code else "closed without a close frame")
        self.code = code
        self.reason = reason


def answered_by_engine(status: int, headers: Mapping[str, str]) -> bool:
    """Whether an HTTP answer proves the server asked answers.

    Any answer does, except a gateway's 502/503/504 without the engine's own
    ``X-Engine-Node`` header: a reverse proxy saying the master behind it does not
    answer is no sign of the master's life.
    """
    if status not in GATEWAY_STATUSES:
        return True
    return any(name.lower() == ENGINE_HEADER for name in headers)


def certificate_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS failure behind ``exc`` (itself, or what it was raised from) that proves a
    TLS server answered: a certificate this side does not trust, or a TLS alert. A
    connection lost during the TLS handshake proves nothing and is not one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        if isinstance(current, ssl.SSLError) and not isinstance(
            current, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError
        ):
            return current
        current = current.__cause__ or current.__context__
    return None


def describe_tls(error: ssl.SSLError, whose: str = "the master's") -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"{whose} certificate is not trusted: {error.verify_message}"
    return f"the TLS handshake failed: {getattr(error, 'reason', None) or error}"


def classify(exc: BaseException) -> LinkFailure:
    """Why one link attempt failed, and whether that proves the master answers."""
    tls = certificate_error(exc)
    if tls is not None:
        return LinkFailure("tls", describe_tls(tls))
    if isinstance(exc, HandshakeClosed):
        return _closed(exc)
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if answered_by_engine(status, exc.response.headers):
            return LinkFailure("refused", f"the master answered the link with HTTP {status}")
        return LinkFailure("unreachable", f"a gateway answered HTTP {status} for the master")
    if isinstance(exc, InvalidMessage):
        return LinkFailure("unreachable", "the connection closed before any HTTP answer")
    if isinstance(exc, InvalidHandshake):
        return LinkFailure("refused", f"the master's answer is not a websocket: {exc}")
    if isinstance(exc, AuthFailed):
        # The real master proves the secret the edge's proof matched: whoever failed
        # that is not this edge's master, and the master itself did not answer.
        return LinkFailure("unreachable", f"the peer failed authentication ({exc})")
    if isinstance(exc, FrameError):
        return LinkFailure("refused", f"the master sent a bad handshake frame: {exc}")
    if isinstance(exc, TimeoutError):
        return LinkFailure("unreachable", "timed out")
    return LinkFailure("unreachable", f"{type(exc).__name__}: {exc}")  # refused, DNS, reset


def _closed(exc: HandshakeClosed) -> LinkFailure:
    code, reason = exc.code, exc.reason
    if code is None:
        return LinkFailure("unreachable", "the connection closed during the handshake")
    if code == CloseCode.AUTH_FAILED:
        return LinkFailure(
            "refused",
            "the master refused this edge's proof: its ENGINE_EDGE_SECRET is wrong or revoked",
        )
    if code == CloseCode.DUPLICATE:
        return LinkFailure(
            "refused",
            f"the master refused this process as a duplicate: {reason or 'another is linked'}",
            duplicate=True,
        )
    said = f": {reason}" if reason else ""
    return LinkFailure("refused", f"the master closed the handshake (code {code}){said}")


@dataclass(frozen=True)
class LinkReport:
    """The link as the edge reports it, and why it was last refused or failed.

    ``state`` is one of :data:`LINK_STATES`: ``up``; ``closed`` (no link, and no attempt
    has failed since it dropped, or since the edge started); ``refused``, ``tls`` or
    ``unreachable`` (how the latest attempt failed). ``since`` is when ``state`` last
    changed; ``error`` and ``error_at`` say why the link is not up (None while it is).
    """

    state: LinkState
    since: datetime
    error: str | None = None
    error_at: datetime | None = None

    @classmethod
    def at_start(cls, now: datetime) -> LinkReport:
        return cls("closed", now)

    @property
    def master_alive(self) -> bool:
        """Whether the latest word proves the master answers (the link up, or a failure
        that only a live master can cause)."""
        return self.state in ("up", "refused", "tls")

    def up(self, now: datetime) -> LinkReport:
        return self._to("up", now, None)

    def dropped(self, reason: str, now: datetime) -> LinkReport:
        return self._to("closed", now, reason)

    def failed(self, failure: LinkFailure, now: datetime) -> LinkReport:
        return self._to(failure.kind, now, failure.detail)

    def _to(self, state: LinkState, now: datetime, error: str | None) -> LinkReport:
        since = self.since if state == self.state else now
        return replace(self, state=state, since=since, error=error, error_at=now if error else None)
