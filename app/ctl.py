"""``python -m app ctl``: operate a running server from a shell, in the spirit of patronictl.

Every command is one or two HTTP calls to the server's API with the operator's bearer
token. Output is one line per item for people, or the API's JSON with ``--json``; any
failure is one line on stderr and a non-zero exit status. A server that does not
answer is reported after ``--timeout`` seconds rather than waited for; a change of
controller or of secret is confirmed first (``--yes`` confirms it in a script).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TextIO
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
#: Redirects followed with the token kept (an edge sends control operations to the master).
MAX_REDIRECTS = 3
#: Seconds to wait for an answer: a read, and a change the edge must confirm first.
READ_TIMEOUT_S = 5.0
CHANGE_TIMEOUT_S = 20.0
#: The commands that change who controls a location or how its edge authenticates.
CHANGES = ("restore", "takeover", "rotate-secret")


class CtlError(Exception):
    """What went wrong, in one line for the operator."""


class UsageError(CtlError):
    """The command line itself is wrong (exit status 2)."""


def base_url(text: str) -> str:
    """The server's base URL as given, path kept: ``127.0.0.1:8000`` means
    ``http://127.0.0.1:8000``; a trailing slash is dropped."""
    text = text.strip()
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"the server's URL {text!r} must start with http:// or https://")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise UsageError(f"the server's URL {text!r} has a bad port") from None
    if not parts.hostname:
        raise UsageError(f"the server's URL {text!r} names no host")
    if parts.query or parts.fragment:
        raise UsageError(f"the server's URL {text!r} must not carry a query or fragment")
    return text.rstrip("/")


class Client:
    """The API calls the commands make, with the token and the server's errors in words."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base = url
        self._timeout = timeout
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """The decoded JSON answer; raises :class:`CtlError` for anything but success.

        ``path`` is appended to the server's URL, so a server behind a path prefix
        (``https://proxy/engine``) is reached at ``https://proxy/engine/api/…``.
        """
        url = self._base + path
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._http.request(method, url, json=body)
            except httpx.TimeoutException as exc:
                raise CtlError(self._timed_out(url, exc)) from None
            except httpx.HTTPError as exc:
                raise CtlError(f"cannot reach {url}: {_reason(exc)}") from None
            if response.status_code in (307, 308) and "location" in response.headers:
                url = str(response.url.join(response.headers["location"]))
                continue
            if response.is_success:
                return response.json() if response.content else None
            raise CtlError(_problem(response))
        raise CtlError(f"{method} {path}: more than {MAX_REDIRECTS} redirects")

    def _timed_out(self, url: str, exc: httpx.TimeoutException) -> str:
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return f"cannot reach {url}: no connection within {self._timeout:g} s"
        return (
            f"no answer from {url} within {self._timeout:g} s: the server is hung, frozen "
            "or overloaded (--timeout S waits longer)"
        )


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    line = text.splitlines()[0]
    if "Connection refused" in line or "Connect call failed" in line:
        return f"nothing listens there ({line}): is the server running?"
    return line


def _problem(response: httpx.Response) -> str:
    """``401 Unauthorized: the token is not valid`` from a problem+json answer."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    title = body.get("title") or response.reason_phrase
    detail = body.get("detail")
    line = f"{response.status_code} {title}" + (f": {detail}" if detail else "")
    return " ".join(line.split())


# --- formatting ---------------------------------------------------------------------


def window_text(window: Mapping[str, str] | None, zone: str) -> str:
    """``2026-11-26 03:00 to 04:00 UTC`` in the location's zone; ``manual`` without one."""
    if not window:
        return "manual"
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz, zone = ZoneInfo("UTC"), "UTC"
    start = datetime.fromisoformat(window["start"]).astimezone(tz)
    end = datetime.fromisoformat(window["end"]).astimezone(tz)
    end_format = "%H:%M" if end.date() == start.date() else "%Y-%m-%d %H:%M"
    return f"{start:%Y-%m-%d %H:%M} to {end.strftime(end_format)} {zone}"


def failover_text(control: Mapping[str, Any]) -> str:
    retry_after = control.get("retry_after")
    if retry_after is not None:
        return f"pending ({float(retry_after):.0f} s)"
    if control.get("pending"):
        return f"waiting for the store ({control['pending'].get('decision')})"
    return "active" if control.get("failover_active") else "no"


def status_rows(snapshot: Mapping[str, Any]) -> list[list[str]]:
    rows = [["ID", "NAME", "CONTROLLER", "ONLINE", "EPOCH", "FAILOVER", "NEXT WINDOW"]]
    for location in snapshot.get("locations", []):
        control = location.get("control") or {}
        rows.append(
            [
                location["id"],
                location.get("name", ""),
                str(control.get("controller", "none")),
                "yes" if control.get("online") else "no",
                str(control.get("epoch", 0)),
                failover_text(control),
                window_text(control.get("next_restore_window"), location.get("timezone", "UTC")),
            ]
        )
    return rows


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


#: How an edge's link to the master reads, by ``master_link.state``.
LINK_WORDS = {
    "up": "linked",
    "unreachable": "MASTER UNREACHABLE",
    "refused": "REFUSED by the master",
    "tls": "TLS FAILS with the master",
    "closed": "link CLOSED",
}


def since_text(iso: str | None, now: datetime) -> str:
    """`` since 12:00:03 UTC (35 s)`` for an ISO instant; empty without one."""
    if not iso:
        return ""
    moment = datetime.fromisoformat(iso)
    seconds = max(0, round((now - moment).total_seconds()))
    return f" since {moment:%H:%M:%S %Z} ({seconds} s)"


def status_text(snapshot: Mapping[str, Any], now: datetime) -> str:
    """The table, with what the server says is wrong around it: an edge's link to the
    master above it, a store refusing writes, locations nobody runs below it."""
    lines = []
    link = snapshot.get("master_link")
    if link:
        state = link.get("state", "unknown")
        words = LINK_WORDS.get(state, state)
        line = f"{snapshot.get('node')}: {words} to the master {link.get('master_url') or ''}"
        if state != "up":
            line = line.rstrip() + since_text(link.get("since"), now)
            if link.get("error"):
                line += f": {link['error']}"
                if link.get("error_at") and not link.get("since"):
                    moment = datetime.fromisoformat(link["error_at"])
                    seconds = max(0, round((now - moment).total_seconds()))
                    line += f" (at {moment:%H:%M:%S %Z}, {seconds} s ago)"
            if state == "unreachable":
                line += "; this edge runs its location on its own"
            elif link.get("master_alive"):
                line += "; the master answers, so it will not take over for this"
            line += " (controller, epoch and failover below are the master's last word)"
        lines.append(line.rstrip())
    store = (snapshot.get("health") or {}).get("store") or {}
    if store and not store.get("writable", True):
        lines.append(
            f"{snapshot.get('node')}: its store REFUSES WRITES"
            f"{since_text(store.get('since'), now)}: {store.get('error')}; decisions are "
            "carried out and recorded once it takes writes again"
        )
    lines.append(table(status_rows(snapshot)))
    for location in snapshot.get("locations", []):
        control = location.get("control") or {}
        if control.get("controller", "none") == "none":
            edge = location["id"]
            then = (
                "the master takes it over once its failover timeout passes"
                if control.get("retry_after") is not None
                else f"or `engine ctl takeover {edge}` runs it on the master"
            )
            lines.append(
                f"{edge}: NOBODY RUNS ITS DEVICES: start its edge (ENGINE_EDGE_ID={edge}), {then}"
            )
    return "\n".join(lines)


def control_text(edge_id: str, control: Mapping[str, Any]) -> str:
    online = "online" if control.get("online") else "offline"
    line = (
        f"{edge_id}: controller {control.get('controller')}, epoch {control.get('epoch')}, "
        f"edge {online}"
    )
    reason = control.get("reason")
    return f"{line} ({reason})" if reason else line


def event_text(event: Mapping[str, Any]) -> str:
    by = f" by {event['by']}" if event.get("by") else ""
    return (
        f"{event.get('at', '')}  {event.get('kind', '')}{by}  "
        f"controller {event.get('controller')}, epoch {event.get('epoch')}: "
        f"{event.get('reason', '')}"
    )


def rotation_text(edge_id: str, rotated: Mapping[str, Any], grace: float | None) -> str:
    """The new secret, then every secret valid now with its end, as the server says."""
    lines = [
        f"new secret of {edge_id} (shown once; give it to the edge as ENGINE_EDGE_SECRET): "
        f"{rotated.get('secret')}",
        'secrets valid now (fingerprint: printf %s "$ENGINE_EDGE_SECRET" | sha256sum | '
        "cut -c1-12):",
    ]
    for valid in rotated.get("valid", []):
        if valid.get("current"):
            end = "the new one, valid until the next rotation"
        else:
            end = f"until {valid.get('until')} at the latest, or until the edge uses a newer one"
        used = " (the edge's live link uses it)" if valid.get("in_use") else ""
        lines.append(f"  {valid.get('fingerprint')}  {end}{used}")
    if grace == 0:
        lines.append("every previous secret is revoked: a link that used one is closed")
    return "\n".join(lines)


# --- commands -----------------------------------------------------------------------


def run(
    args: argparse.Namespace,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    ask: Callable[[str], bool] | None = None,
) -> int:
    """Run one ``ctl`` command; 0 on success, 1 when the server or the network said no,
    2 for a usage error. ``ask`` confirms a change (a terminal prompt by default)."""
    token = getattr(args, "token", None) or os.environ.get("ENGINE_TOKEN")
    if not token:
        print("error: no token: set ENGINE_TOKEN or pass --token", file=err)
        return 2
    try:
        url = base_url(getattr(args, "url", None) or os.environ.get("ENGINE_URL") or DEFAULT_URL)
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return 2
    timeout = getattr(args, "timeout", None)
    if timeout is None:
        timeout = CHANGE_TIMEOUT_S if args.ctl_command in CHANGES else READ_TIMEOUT_S
    client = Client(url, token, timeout=timeout)
    try:
        result, text = _command(client, args, ask or _terminal(err))
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return 2
    except CtlError as exc:
        print(f"error: {exc}", file=err)
        return 1
    finally:
        client.close()
    try:
        print(json.dumps(result, indent=2) if getattr(args, "json", False) else text, file=out)
        out.flush()
    except BrokenPipeError:  # `engine ctl status | head -1`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
    return 0


def _terminal(err: TextIO) -> Callable[[str], bool] | None:
    """Asks on the terminal; None when there is none to ask (a script, a pipe)."""
    if not sys.stdin.isatty():
        return None

    def ask(question: str) -> bool:
        print(f"{question} [y/N] ", end="", file=err, flush=True)
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    return ask


def _command(
    client: Client, args: argparse.Namespace, ask: Callable[[str], bool] | None
) -> tuple[Any, str]:
    command = args.ctl_command
    if command == "status":
        snapshot = client.call("GET", "/api/status")
        return snapshot, status_text(snapshot, datetime.now().astimezone())
    if command == "panel-key":
        return _panel_key(client, args)
    edge = quote(args.edge, safe="")
    if command == "events":
        events = client.call("GET", f"/api/edges/{edge}/events?limit={args.limit}")
        return events, "\n".join(event_text(e) for e in events) or "no decisions recorded"
    if not getattr(args, "yes", False):
        _confirm(client, args, edge, ask)
    if command in ("restore", "takeover"):
        control = client.call("POST", f"/api/edges/{edge}/{command}")
        return control, control_text(args.edge, control)
    if command == "rotate-secret":
        body = {} if args.grace is None else {"grace_s": args.grace}
        rotated = client.call("POST", f"/api/edges/{edge}/secret", body)
        return rotated, rotation_text(args.edge, rotated, args.grace)
    raise CtlError(f"unknown command {command!r}")


def _panel_key(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    """Issue a room's device key (the panel link with it), list the keys, or revoke one."""
    keys = f"/api/systems/{quote(args.system, safe='')}/keys"
    if args.list:
        listed = client.call("GET", keys)
        lines = [
            f"{k['id']}  {k['name']}  created {k['created_at']} by {k['created_by']}"
            for k in listed
        ]
        return listed, "\n".join(lines) or f"{args.system} has no device keys"
    if args.revoke:
        client.call("DELETE", f"{keys}/{quote(args.revoke, safe='')}")
        revoked = {"id": args.revoke, "system_id": args.system, "revoked": True}
        return revoked, f"revoked {args.revoke}: a panel using it is refused at its next call"
    issued = client.call("POST", keys, {"name": args.name} if args.name else {})
    return issued, (
        f"device key {issued['id']} for {args.system} (shown once): {issued['key']}\n"
        f"open the room's panel with it: {issued['panel_url']}"
    )


#: What each change does, for its confirmation.
QUESTIONS = {
    "takeover": "Take {edge} over by the master? Its edge stops its modules and the master "
    "runs the location's rooms",
    "restore": "Hand {edge} back to its edge? The master stops its copies of the rooms' "
    "modules and the edge starts them",
    "rotate-secret": "Issue a new secret for {edge}? {grace}",
}


def _confirm(
    client: Client, args: argparse.Namespace, edge: str, ask: Callable[[str], bool] | None
) -> None:
    """Say where the location stands and what the command will do; go on only on yes."""
    if ask is None:
        raise UsageError(
            f"{args.ctl_command} {args.edge} needs a confirmation: pass --yes "
            "(there is no terminal to ask)"
        )
    control = client.call("GET", f"/api/edges/{edge}/control")
    grace = args.grace if args.ctl_command == "rotate-secret" else None
    question = QUESTIONS[args.ctl_command].format(
        edge=args.edge,
        grace=(
            "Every previous secret is revoked now and a link that used one is closed"
            if grace == 0
            else "The secrets valid now stay valid until the edge uses the new one, or "
            + ("one day" if grace is None else f"{grace:g} s")
            + " at most"
        ),
    )
    if not ask(f"now: {control_text(args.edge, control)}\n{question}?"):
        raise CtlError("not confirmed: nothing changed")
