"""Client routing (DESIGN §4): who answers a request about a module or system.

One pure decision over a snapshot of where the target lives and who controls that
location, used for every module and system endpoint and for configuration writes on
an edge: answer here, send a ``307`` to the controller, proxy to it, or refuse with
``503`` while nobody can answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Preference = Literal["redirect", "proxy"]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a request's target is controlled, as this server sees it now."""

    #: "here": this server runs it; "elsewhere": another server does.
    controller: Literal["here", "elsewhere"]
    #: Names the controller in answers ("master", "edge 'edge-1'").
    name: str = ""
    #: The controller's public base URL, when clients can reach it directly.
    url: str | None = None
    #: Whether the controller can answer now (its link is up, as far as we know).
    reachable: bool = True
    #: Whether this server can forward the call over the control link itself.
    via_link: bool = False
    #: Why the controller cannot answer (for 503s).
    reason: str = ""
    #: Seconds until a pending failover moves control here (``Retry-After``).
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Local:
    """Answer here (a local module, or a remote one through the control link)."""


@dataclass(frozen=True, slots=True)
class Redirect:
    base_url: str


@dataclass(frozen=True, slots=True)
class Proxy:
    base_url: str
    name: str


@dataclass(frozen=True, slots=True)
class Refuse:
    detail: str
    retry_after: float | None = None


Route = Local | Redirect | Proxy | Refuse


def decide(placement: Placement, preference: Preference) -> Route:
    """The answer to a request about a target placed as ``placement``."""
    if placement.controller == "here":
        return Local()
    if not placement.reachable:
        reason = f": {placement.reason}" if placement.reason else ""
        return Refuse(
            f"{placement.name} controls this and cannot be reached{reason}", placement.retry_after
        )
    if placement.url is None:
        if placement.via_link:
            return Local()
        return Refuse(f"{placement.name} controls this but has no public URL to send you to")
    if preference == "proxy":
        return Proxy(placement.url, placement.name)
    return Redirect(placement.url)


def preference_from(header: str | None, default: Preference) -> tuple[Preference, bool]:
    """The routing a client asked for with ``Prefer: routing=…``; True when it asked."""
    if header:
        for token in header.replace(";", ",").split(","):
            key, _, value = token.strip().partition("=")
            if key.strip().lower() == "routing" and value.strip().lower() in ("redirect", "proxy"):
                return ("proxy" if value.strip().lower() == "proxy" else "redirect"), True
    return default, False
