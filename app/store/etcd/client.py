"""A thin asyncio client of etcd's v3 API through its JSON gateway (``/v3/…`` over HTTP).

etcd serves every gRPC call of its v3 API as JSON on the client port as well (the
gRPC gateway, stable since etcd 3.4): unary calls are a POST with a JSON body; watch
is a POST whose response streams one JSON object per line. Keys and values travel
base64-encoded, 64-bit integers as strings, and fields at their zero value are left
out. This module speaks just what the store and the leader election need: range, txn
(with put, delete and range inside), watch, leases, compaction and authentication.
The README (etcd store) says why this client rather than a gRPC one.

Endpoints are tried in turn: a request that could not be sent to one (refused,
unreachable) goes to the next. One that was sent and timed out is not repeated, since
etcd may have applied it: the caller hears :class:`EtcdUnavailable`.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import httpx

from app.store.etcd.config import EtcdConfig

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]


class GrpcCode(IntEnum):
    """The gRPC status codes etcd answers with that this client tells apart."""

    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    FAILED_PRECONDITION = 9
    RESOURCE_EXHAUSTED = 8
    OUT_OF_RANGE = 11
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


class EtcdError(Exception):
    """etcd refused a request; ``code`` is its gRPC status code (None: no answer)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class EtcdUnavailable(EtcdError):
    """No endpoint answered in time, or the cluster cannot serve now (no leader, no
    quorum, its space quota exceeded). A write that timed out may have been applied."""


class EtcdCompacted(EtcdError):
    """The revision asked for is older than the cluster's compaction point."""

    def __init__(self, message: str, compact_revision: int = 0) -> None:
        super().__init__(message, GrpcCode.OUT_OF_RANGE)
        self.compact_revision = compact_revision


UNAVAILABLE_CODES = frozenset({GrpcCode.UNAVAILABLE, GrpcCode.DEADLINE_EXCEEDED})


def encode(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def decode(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: str) -> str:
    """The range end that makes a range cover every key starting with ``prefix`` (ASCII)."""
    if not prefix.isascii() or not prefix or prefix[-1] == "\x7f":
        raise ValueError(f"a key prefix must be ASCII and end below DEL: {prefix!r}")
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyValue:
        return cls(
            key=decode(data.get("key")).decode(),
            value=decode(data.get("value")),
            create_revision=int(data.get("create_revision", 0)),
            mod_revision=int(data.get("mod_revision", 0)),
            version=int(data.get("version", 0)),
            lease=int(data.get("lease", 0)),
        )


@dataclass(frozen=True, slots=True)
class RangeResult:
    """What a range read: ``revision`` is the store's revision it was read at."""

    revision: int
    kvs: Sequence[KeyValue]
    count: int
    more: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any], revision: int | None = None) -> RangeResult:
        return cls(
            revision=revision if revision is not None else _revision(data),
            kvs=[KeyValue.from_json(kv) for kv in data.get("kvs", [])],
            count=int(data.get("count", 0)),
            more=bool(data.get("more", False)),
        )


@dataclass(frozen=True, slots=True)
class TxnResult:
    """A transaction's outcome: which branch ran, at which revision, the ranges it read."""

    succeeded: bool
    revision: int
    ranges: Sequence[RangeResult]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    deleted: bool
    kv: KeyValue
    prev_kv: KeyValue | None


@dataclass(frozen=True, slots=True)
class WatchResponse:
    """One message of a watch: events of whole revisions, or the watch's end."""

    revision: int
    events: Sequence[WatchEvent]
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""


# --- request builders (the JSON the gateway takes) ------------------------------------


def compare_create_revision(key: str, revision: int, result: str = "EQUAL") -> JsonObject:
    """``key``'s create revision compared with ``revision`` (0: the key is absent)."""
    return {"key": encode(key), "target": "CREATE", "result": result, "create_revision": revision}


def compare_mod_revision(key: str, revision: int, result: str = "EQUAL") -> JsonObject:
    return {"key": encode(key), "target": "MOD", "result": result, "mod_revision": revision}


def put_op(key: str, value: bytes, *, lease: int = 0) -> JsonObject:
    request: JsonObject = {"key": encode(key), "value": encode(value)}
    if lease:
        request["lease"] = lease
    return {"request_put": request}


def delete_op(key: str) -> JsonObject:
    return {"request_delete_range": {"key": encode(key)}}


def range_op(key: str, *, keys_only: bool = False) -> JsonObject:
    return {"request_range": {"key": encode(key), "keys_only": keys_only}}


# --- the client -----------------------------------------------------------------------


class EtcdClient:
    """One HTTP connection pool to a cluster's endpoints, authenticated if configured."""

    def __init__(self, config: EtcdConfig, *, timeout_s: float | None = None) -> None:
        self.config = config
        self.timeout_s = timeout_s if timeout_s is not None else config.timeout_s
        self._http = httpx.AsyncClient(
            verify=_tls_context(config),
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )
        self._current = 0
        self._token: str | None = None

    async def close(self) -> None:
        await self._http.aclose()

    @property
    def endpoint(self) -> str:
        """The endpoint requests go to first."""
        return self.config.endpoints[self._current]

    # --- unary calls ------------------------------------------------------------------

    async def range(
        self,
        key: str,
        range_end: str | None = None,
        *,
        revision: int = 0,
        timeout_s: float | None = None,
    ) -> RangeResult:
        """Keys from ``key`` up to ``range_end`` (just ``key`` without one), at the
        newest revision or at ``revision`` (:class:`EtcdCompacted` when compacted)."""
        body: JsonObject = {"key": encode(key)}
        if range_end is not None:
            body["range_end"] = encode(range_end)
        if revision:
            body["revision"] = revision
        return RangeResult.from_json(await self.call("/v3/kv/range", body, timeout_s=timeout_s))

    async def txn(
        self,
        compare: Sequence[JsonObject],
        success: Sequence[JsonObject],
        failure: Sequence[JsonObject] = (),
        *,
        timeout_s: float | None = None,
    ) -> TxnResult:
        answer = await self.call(
            "/v3/kv/txn",
            {"compare": list(compare), "success": list(success), "failure": list(failure)},
            timeout_s=timeout_s,
        )
        revision = _revision(answer)
        ranges = [
            RangeResult.from_json(item["response_range"], revision)
            for item in answer.get("responses", [])
            if "response_range" in item
        ]
        return TxnResult(bool(answer.get("succeeded", False)), revision, ranges)

    async def compact(self, revision: int) -> None:
        await self.call("/v3/kv/compaction", {"revision": revision, "physical": False})

    async def lease_grant(self, ttl_s: int, *, timeout_s: float | None = None) -> tuple[int, int]:
        """A new lease; returns its id and the TTL etcd granted."""
        answer = await self.call("/v3/lease/grant", {"TTL": ttl_s}, timeout_s=timeout_s)
        return int(answer["ID"]), int(answer.get("TTL", 0))

    async def lease_keepalive(self, lease_id: int, *, timeout_s: float | None = None) -> int:
        """Renew a lease once; returns the TTL it has again (0: it had expired)."""
        answer = await self.call("/v3/lease/keepalive", {"ID": lease_id}, timeout_s=timeout_s)
        return int(answer.get("result", {}).get("TTL", 0))

    async def lease_revoke(self, lease_id: int, *, timeout_s: float | None = None) -> None:
        """Revoke a lease, deleting its keys; one already gone is no error."""
        try:
            await self.call("/v3/lease/revoke", {"ID": lease_id}, timeout_s=timeout_s)
        except EtcdError as exc:
            if exc.code != GrpcCode.NOT_FOUND:
                raise

    async def call(
        self, path: str, body: JsonObject, *, timeout_s: float | None = None
    ) -> JsonObject:
        """POST ``body`` to ``path`` on the first endpoint that takes it; the JSON answer."""
        for attempt in range(2):
            response = await self._send(path, body, timeout_s)
            answer = _json(response)
            if response.status_code == 200:
                return answer
            code = answer.get("code")
            if code == GrpcCode.UNAUTHENTICATED and self.config.username and attempt == 0:
                self._token = None  # an expired token: authenticate again, once
                continue
            raise _error(answer, response.status_code)
        raise AssertionError("unreachable")

    # --- watch ------------------------------------------------------------------------

    async def watch(
        self,
        key: str,
        range_end: str | None = None,
        *,
        start_revision: int = 0,
        prev_kv: bool = False,
    ) -> AsyncIterator[WatchResponse]:
        """The responses of one watch, until it is canceled (its last response says why)
        or the connection breaks (:class:`EtcdUnavailable`)."""
        create: JsonObject = {"key": encode(key)}
        if range_end is not None:
            create["range_end"] = encode(range_end)
        if start_revision:
            create["start_revision"] = start_revision
        if prev_kv:
            create["prev_kv"] = True
        body = {"create_request": create}
        timeout = httpx.Timeout(self.timeout_s, read=None)
        for attempt in range(len(self.config.endpoints)):
            endpoint = self.endpoint
            headers = await self._headers(endpoint)
            try:
                async with self._http.stream(
                    "POST", f"{endpoint}/v3/watch", json=body, headers=headers, timeout=timeout
                ) as response:
                    if response.status_code != 200:
                        raise _error(_json_text(await response.aread()), response.status_code)
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        message = _json_text(line.encode())
                        if "error" in message:
                            raise _error(message["error"], response.status_code)
                        parsed = _watch_response(message.get("result", {}))
                        yield parsed
                        if parsed.canceled:
                            return
                raise EtcdUnavailable(f"{endpoint}: the watch stream ended")
            except httpx.ConnectError as exc:
                self._next_endpoint(endpoint, exc)
                if attempt == len(self.config.endpoints) - 1:
                    raise EtcdUnavailable(f"no etcd endpoint answered: {exc}") from exc
            except httpx.HTTPError as exc:
                self._next_endpoint(endpoint, exc)
                raise EtcdUnavailable(f"{endpoint}: the watch broke: {exc!r}") from exc

    # --- plumbing ---------------------------------------------------------------------

    async def _send(self, path: str, body: JsonObject, timeout_s: float | None) -> httpx.Response:
        timeout = httpx.Timeout(timeout_s or self.timeout_s)
        last: Exception | None = None
        for _ in self.config.endpoints:
            endpoint = self.endpoint
            try:
                headers = await self._headers(endpoint)
                return await self._http.post(
                    f"{endpoint}{path}", json=body, headers=headers, timeout=timeout
                )
            except httpx.ConnectError as exc:  # never sent: the next endpoint may take it
                last = exc
                self._next_endpoint(endpoint, exc)
            except httpx.HTTPError as exc:  # sent, and maybe applied: not repeated
                self._next_endpoint(endpoint, exc)
                raise EtcdUnavailable(f"{endpoint}{path}: {exc!r}") from exc
        raise EtcdUnavailable(f"no etcd endpoint answered {path}: {last!r}")

    def _next_endpoint(self, failed: str, exc: Exception) -> None:
        if self.endpoint == failed and len(self.config.endpoints) > 1:
            self._current = (self._current + 1) % len(self.config.endpoints)
            log.info("etcd endpoint %s failed (%r); trying %s next", failed, exc, self.endpoint)

    async def _headers(self, endpoint: str) -> dict[str, str]:
        if self.config.username is None:
            return {}
        if self._token is None:
            response = await self._http.post(
                f"{endpoint}/v3/auth/authenticate",
                json={"name": self.config.username, "password": self.config.password},
            )
            answer = _json(response)
            if response.status_code != 200:
                raise _error(answer, response.status_code)
            self._token = str(answer["token"])
        return {"Authorization": self._token}


def _tls_context(config: EtcdConfig) -> ssl.SSLContext | bool:
    if not config.endpoints[0].startswith("https://"):
        return True
    context = ssl.create_default_context(cafile=str(config.ca) if config.ca else None)
    if config.cert is not None and config.key is not None:
        context.load_cert_chain(str(config.cert), str(config.key))
    return context


def _revision(data: Mapping[str, Any]) -> int:
    return int(data.get("header", {}).get("revision", 0))


def _json(response: httpx.Response) -> JsonObject:
    return _json_text(response.content)


def _json_text(raw: bytes) -> JsonObject:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"error": raw[:200].decode(errors="replace")}
    return value if isinstance(value, dict) else {"error": repr(value)[:200]}


def _error(answer: Mapping[str, Any], status: int) -> EtcdError:
    code = answer.get("code")
    message = str(answer.get("message") or answer.get("error") or f"HTTP {status}")
    if code == GrpcCode.OUT_OF_RANGE and "compacted" in message:
        return EtcdCompacted(message)
    if code == GrpcCode.RESOURCE_EXHAUSTED and "space exceeded" in message:
        return EtcdUnavailable(message, code)  # the database quota: no write until defragmented
    if code in UNAVAILABLE_CODES or (status >= 500 and code is None):
        return EtcdUnavailable(message, code)
    return EtcdError(message, code)


def _watch_response(result: Mapping[str, Any]) -> WatchResponse:
    events = [
        WatchEvent(
            deleted=event.get("type") == "DELETE",
            kv=KeyValue.from_json(event["kv"]),
            prev_kv=KeyValue.from_json(event["prev_kv"]) if "prev_kv" in event else None,
        )
        for event in result.get("events", [])
    ]
    return WatchResponse(
        revision=_revision(result),
        events=events,
        created=bool(result.get("created", False)),
        canceled=bool(result.get("canceled", False)),
        compact_revision=int(result.get("compact_revision", 0)),
        cancel_reason=str(result.get("cancel_reason", "")),
    )
