"""``python -m app ctl``: operate a running server from a shell, in the spirit of patronictl.

Every command is one or two HTTP calls to the server's API with the operator's bearer
token. Output is one line per item for people, or the API's JSON with ``--json``; any
failure is one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
#: Redirects followed with the token kept (an edge sends control operations to the master).
MAX_REDIRECTS = 3
TIMEOUT_S = 30.0


class CtlError(Exception):
    """What went wrong, in one line for the operator."""


class Client:
    """The API calls the commands make, with the token and the server's errors in words."""

    def __init__(self, url: str, token: str) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT_S,
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """The decoded JSON answer; raises :class:`CtlError` for anything but success."""
        url = str(self._http.base_url.join(path))
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._http.request(method, url, json=body)
            except httpx.HTTPError as exc:
                raise CtlError(f"cannot reach {url}: {_reason(exc)}") from None
            if response.status_code in (307, 308) and "location" in response.headers:
                url = str(response.url.join(response.headers["location"]))
                continue
            if response.is_success:
                return response.json() if response.content else None
            raise CtlError(_problem(response))
        raise CtlError(f"{method} {path}: more than {MAX_REDIRECTS} redirects")


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


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


# --- commands -----------------------------------------------------------------------


def run(args: argparse.Namespace, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run one ``ctl`` command; 0 on success, 1 when the server or the network said no."""
    url = getattr(args, "url", None) or os.environ.get("ENGINE_URL") or DEFAULT_URL
    token = getattr(args, "token", None) or os.environ.get("ENGINE_TOKEN")
    if not token:
        print("error: no token: set ENGINE_TOKEN or pass --token", file=err)
        return 2
    client = Client(url, token)
    try:
        result, text = _command(client, args)
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


def _command(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    command = args.ctl_command
    if command == "status":
        snapshot = client.call("GET", "/api/status")
        return snapshot, table(status_rows(snapshot))
    if command == "panel-key":
        return _panel_key(client, args)
    edge = _segment(args.edge)
    if command == "events":
        events = client.call("GET", f"/api/edges/{edge}/events?limit={args.limit}")
        return events, "\n".join(event_text(e) for e in events) or "no decisions recorded"
    if command in ("restore", "takeover"):
        control = client.call("POST", f"/api/edges/{edge}/{command}")
        return control, control_text(args.edge, control)
    if command == "rotate-secret":
        body = {} if args.grace is None else {"grace_s": args.grace}
        rotated = client.call("POST", f"/api/edges/{edge}/secret", body)
        grace = "one day" if args.grace is None else f"{args.grace:g} s"
        return rotated, (
            f"new secret of {args.edge} (shown once; give it to the edge as "
            f"ENGINE_EDGE_SECRET): {rotated.get('secret')}\n"
            f"the previous secret stays valid until the edge first uses the new one, "
            f"or {grace} at most"
        )
    raise CtlError(f"unknown command {command!r}")


def _panel_key(client: Client, args: argparse.Namespace) -> tuple[Any, str]:
    """Issue a room's device key (the panel link with it), list the keys, or revoke one."""
    keys = f"/api/systems/{_segment(args.system)}/keys"
    if args.list:
        listed = client.call("GET", keys)
        lines = [
            f"{k['id']}  {k['name']}  created {k['created_at']} by {k['created_by']}"
            for k in listed
        ]
        return listed, "\n".join(lines) or f"{args.system} has no device keys"
    if args.revoke:
        client.call("DELETE", f"{keys}/{_segment(args.revoke)}")
        revoked = {"id": args.revoke, "system_id": args.system, "revoked": True}
        return revoked, f"revoked {args.revoke}: a panel using it is refused at its next call"
    issued = client.call("POST", keys, {"name": args.name} if args.name else {})
    return issued, (
        f"device key {issued['id']} for {args.system} (shown once): {issued['key']}\n"
        f"open the room's panel with it: {issued['panel_url']}"
    )


def _segment(value: str) -> str:
    """An id as one URL path segment."""
    from urllib.parse import quote

    return quote(value, safe="")
