"""XDCR from the master's bucket to an edge's cluster, set up through Couchbase's REST API.

Everything happens on the master cluster, and running it again changes nothing that
is already right:

1. the remote cluster reference to the edge (``GET``/``POST /pools/default/remoteClusters``):
   one with the same name and host, or any with the same host, is reused; one with the
   same name but another host is pointed at the edge (``POST .../remoteClusters/NAME``);
   otherwise it is created. With the edge's root certificate the reference is fully
   encrypted (``secureType=full``).
2. the continuous replication of the bucket (``GET /pools/default/tasks``, entries of
   type ``xdcr``; ``POST /controller/createReplication``), created when missing. Its
   filter keeps master-only documents (edge secrets) and the store's own bookkeeping
   keys at the master; an existing replication with another filter gets ours
   (``POST /settings/replications/ID``).

The user needs the Full Admin, Cluster Admin or XDCR Admin role on the master, and the
edge user the XDCR Inbound (or Full Admin) role on the edge.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

import httpx

from app.store.base import MASTER_ONLY_TYPES
from app.store.couchbase import INTERNAL_KEY_PREFIX

MASTER_PASSWORD_ENV = "ENGINE_XDCR_MASTER_PASSWORD"
EDGE_PASSWORD_ENV = "ENGINE_XDCR_EDGE_PASSWORD"
DEFAULT_PORT = 8091
TIMEOUT_S = 30.0

Action = Literal["created", "found", "updated"]


class XdcrError(Exception):
    """Provisioning failed; the message says why and what to check."""


@dataclass(frozen=True, slots=True)
class ClusterAccess:
    """A cluster's REST API (``http(s)://HOST:8091``) and an administrator's credentials.

    ``certificate`` (PEM) is the cluster's root CA: given for the edge, it makes the
    reference to the edge fully encrypted.
    """

    url: str
    username: str
    password: str = field(repr=False)
    certificate: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise XdcrError(f"not a cluster URL (http(s)://HOST:8091): {self.url!r}")

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    @property
    def host(self) -> str:
        """``host[:port]`` as written in the URL: what a reference to this cluster names."""
        return urlsplit(self.url).netloc.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class XdcrReport:
    """What provisioning found in place and what it created or changed."""

    reference_name: str
    reference_host: str
    reference_uuid: str
    reference_action: Action
    replication_id: str
    replication_action: Action
    filter_expression: str

    def summary(self) -> str:
        return "\n".join(
            [
                f"remote cluster reference {self.reference_name!r} -> {self.reference_host} "
                f"(uuid {self.reference_uuid}): {self.reference_action}",
                f"replication {self.replication_id}: {self.replication_action}",
                f"filter: {self.filter_expression}",
            ]
        )


def replication_filter(master_only_types: frozenset[str] = MASTER_ONLY_TYPES) -> str:
    """The XDCR filter expression: everything except local keys and master-only types."""
    local_keys = f"^{re.escape(INTERNAL_KEY_PREFIX)}"
    conditions = [f"NOT REGEXP_CONTAINS(META().id, {json.dumps(local_keys)})"]
    conditions += [f"type != {json.dumps(doc_type)}" for doc_type in sorted(master_only_types)]
    return " AND ".join(conditions)


def same_host(left: str, right: str) -> bool:
    """Whether two ``host[:port]`` strings name the same node (the port defaults to 8091)."""
    return _normalized_host(left) == _normalized_host(right)


def _normalized_host(host: str) -> tuple[str, int]:
    parts = urlsplit(f"//{host}")
    return (parts.hostname or "").lower(), parts.port or DEFAULT_PORT


@dataclass(frozen=True, slots=True)
class _Reference:
    name: str
    host: str
    uuid: str

    @classmethod
    def from_json(cls, data: object) -> _Reference:
        if not isinstance(data, Mapping) or not all(
            isinstance(data.get(key), str) for key in ("name", "hostname", "uuid")
        ):
            raise XdcrError(f"unexpected remote cluster reference from Couchbase: {data!r}")
        return cls(data["name"], data["hostname"], data["uuid"])


def _live_references(listing: object) -> list[_Reference]:
    if not isinstance(listing, list):
        raise XdcrError(f"unexpected remote cluster listing from Couchbase: {listing!r}")
    return [
        _Reference.from_json(entry)
        for entry in listing
        if not (isinstance(entry, Mapping) and entry.get("deleted") is True)
    ]


def _find_replication(
    tasks: object, reference: _Reference, from_bucket: str, to_bucket: str
) -> Mapping[str, object] | None:
    """The replication task from ``from_bucket`` to ``to_bucket`` over the reference."""
    if not isinstance(tasks, list):
        raise XdcrError(f"unexpected task listing from Couchbase: {tasks!r}")
    target = f"/remoteClusters/{reference.uuid}/buckets/{to_bucket}"
    for task in tasks:
        if (
            isinstance(task, Mapping)
            and task.get("type") == "xdcr"
            and task.get("source") == from_bucket
            and task.get("target") == target
        ):
            return task
    return None


class _MasterApi:
    """The master cluster's REST calls used here; every failure becomes an XdcrError."""

    def __init__(self, client: httpx.AsyncClient, master: ClusterAccess) -> None:
        self._client = client
        self._master = master

    async def _call(self, method: str, path: str, form: Mapping[str, str] | None = None) -> object:
        url = self._master.base_url
        try:
            response = await self._client.request(
                method,
                f"{url}{path}",
                data=form,
                auth=(self._master.username, self._master.password),
            )
        except httpx.TimeoutException:
            raise XdcrError(f"cannot reach {url}: timed out") from None
        except httpx.TransportError as exc:
            raise XdcrError(f"cannot reach {url}: {exc or type(exc).__name__}") from None
        if response.status_code == httpx.codes.UNAUTHORIZED:
            raise XdcrError(f"authentication failed for {url}: check the username and password")
        if response.status_code == httpx.codes.FORBIDDEN:
            raise XdcrError(
                f"{url} refused {method} {path}: the user needs the Full Admin, "
                "Cluster Admin or XDCR Admin role"
            )
        if response.is_error:
            detail = response.text.strip() or response.reason_phrase
            raise XdcrError(f"{method} {path} on {url} failed ({response.status_code}): {detail}")
        try:
            return response.json()
        except ValueError:
            raise XdcrError(f"{method} {path} on {url} answered with no JSON") from None

    async def references(self) -> list[_Reference]:
        return _live_references(await self._call("GET", "/pools/default/remoteClusters"))

    async def save_reference(self, form: Mapping[str, str], *, existing: str | None) -> _Reference:
        """Create a reference, or change the one named ``existing``."""
        path = "/pools/default/remoteClusters"
        if existing is not None:
            path += f"/{quote(existing, safe='')}"
        return _Reference.from_json(await self._call("POST", path, form))

    async def tasks(self) -> object:
        return await self._call("GET", "/pools/default/tasks")

    async def create_replication(self, form: Mapping[str, str]) -> str:
        created = await self._call("POST", "/controller/createReplication", form)
        replication_id = created.get("id") if isinstance(created, Mapping) else None
        if not isinstance(replication_id, str):
            raise XdcrError(f"unexpected answer to createReplication: {created!r}")
        return replication_id

    async def set_filter(self, replication_id: str, expression: str) -> None:
        path = f"/settings/replications/{quote(replication_id, safe='')}"
        await self._call("POST", path, {"filterExpression": expression})


async def provision_xdcr(
    master: ClusterAccess,
    edge: ClusterAccess,
    *,
    name: str,
    from_bucket: str,
    to_bucket: str,
    client: httpx.AsyncClient | None = None,
) -> XdcrReport:
    """Make sure the master replicates ``from_bucket`` to the edge's ``to_bucket``."""
    async with AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=TIMEOUT_S))
        api = _MasterApi(client, master)
        reference, reference_action = await _ensure_reference(api, edge, name)
        expression = replication_filter()
        replication_id, replication_action = await _ensure_replication(
            api, reference, from_bucket, to_bucket, expression
        )
    return XdcrReport(
        reference_name=reference.name,
        reference_host=reference.host,
        reference_uuid=reference.uuid,
        reference_action=reference_action,
        replication_id=replication_id,
        replication_action=replication_action,
        filter_expression=expression,
    )


def _reference_form(edge: ClusterAccess, name: str) -> dict[str, str]:
    form = {
        "name": name,
        "hostname": edge.host,
        "username": edge.username,
        "password": edge.password,
    }
    if edge.certificate is not None:
        form |= {"demandEncryption": "1", "secureType": "full", "certificate": edge.certificate}
    return form


async def _ensure_reference(
    api: _MasterApi, edge: ClusterAccess, name: str
) -> tuple[_Reference, Action]:
    references = await api.references()
    named = next((ref for ref in references if ref.name == name), None)
    if named is not None and same_host(named.host, edge.host):
        return named, "found"
    if named is not None:
        return await api.save_reference(_reference_form(edge, name), existing=name), "updated"
    to_edge = next((ref for ref in references if same_host(ref.host, edge.host)), None)
    if to_edge is not None:
        return to_edge, "found"
    return await api.save_reference(_reference_form(edge, name), existing=None), "created"


async def _ensure_replication(
    api: _MasterApi, reference: _Reference, from_bucket: str, to_bucket: str, expression: str
) -> tuple[str, Action]:
    task = _find_replication(await api.tasks(), reference, from_bucket, to_bucket)
    if task is None:
        form = {
            "fromBucket": from_bucket,
            "toCluster": reference.name,
            "toBucket": to_bucket,
            "replicationType": "continuous",
            "filterExpression": expression,
        }
        return await api.create_replication(form), "created"
    replication_id = str(task.get("id") or f"{reference.uuid}/{from_bucket}/{to_bucket}")
    if task.get("filterExpression") == expression:
        return replication_id, "found"
    await api.set_filter(replication_id, expression)
    return replication_id, "updated"


# ------------------------------------------------------------------------- CLI


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``xdcr`` (under ``python -m app couchbase``); its handler is ``run_cli``."""
    parser = subparsers.add_parser(
        "xdcr",
        help="replicate the master's bucket to an edge cluster (idempotent)",
        description="Set up XDCR from the master's bucket to an edge's cluster through "
        "Couchbase's REST API. Running it again changes nothing that is already right.",
    )
    parser.add_argument("--master", required=True, metavar="URL", help="http://HOST:8091")
    parser.add_argument("--master-user", required=True)
    parser.add_argument(
        "--master-password", help=f"default: the environment variable {MASTER_PASSWORD_ENV}"
    )
    parser.add_argument("--edge", required=True, metavar="URL", help="http://HOST:8091")
    parser.add_argument("--edge-user", required=True)
    parser.add_argument(
        "--edge-password", help=f"default: the environment variable {EDGE_PASSWORD_ENV}"
    )
    parser.add_argument(
        "--edge-certificate",
        type=Path,
        metavar="PEM",
        help="the edge cluster's root CA: encrypt the replication fully",
    )
    parser.add_argument("--bucket", required=True, help="the master's bucket")
    parser.add_argument("--edge-bucket", help="the edge's bucket (default: --bucket)")
    parser.add_argument("--name", help="the reference's name (default: edge-HOST)")
    parser.set_defaults(handler=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """Provision and print the outcome: 0 when done, 2 with the reason on stderr."""
    try:
        master = ClusterAccess(
            args.master, args.master_user, _password(args.master_password, MASTER_PASSWORD_ENV)
        )
        edge = ClusterAccess(
            args.edge,
            args.edge_user,
            _password(args.edge_password, EDGE_PASSWORD_ENV),
            _read_certificate(args.edge_certificate),
        )
        report = asyncio.run(
            provision_xdcr(
                master,
                edge,
                name=args.name or _default_name(edge),
                from_bucket=args.bucket,
                to_bucket=args.edge_bucket or args.bucket,
            )
        )
    except XdcrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


def _password(given: str | None, variable: str) -> str:
    password = given or os.environ.get(variable)
    if not password:
        raise XdcrError(f"no password: pass it as an option or set {variable}")
    return password


def _read_certificate(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as exc:
        raise XdcrError(f"cannot read the certificate {path}: {exc.strerror}") from None


def _default_name(edge: ClusterAccess) -> str:
    return "edge-" + re.sub(r"[^A-Za-z0-9._-]+", "-", edge.host).strip("-")
