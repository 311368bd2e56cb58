"""One leader among the masters: a key under a lease in etcd, and the fence on its writes.

The leader key ``P/cluster/leader`` holds ``{"name", "url"}`` of the master that leads.

- **Campaign**: grant a lease of ``ENGINE_MASTER_LEASE_S`` and create the key under it,
  in one transaction that succeeds only if the key is absent.
- **Hold**: renew the lease a third of the way through it; the pure rule in
  :mod:`app.cluster.lease` says, from the send time of the last renewal etcd
  answered, until when this master may act. :attr:`Elector.leading` asks that rule
  at the moment it is read, so a late event loop or a frozen process cannot stretch it.
- **Resign**: revoke the lease on a clean stop; the key goes with it, and a standby
  that watches the key campaigns at once (a planned switchover takes about a second).
- **Fence**: :class:`LeaderFence` makes each store write compare the key's
  ``create_revision`` with the term's, in the same transaction; a deposed leader's
  write is refused by etcd, whatever its clock says.
- **Epoch**: a term's :attr:`Term.epoch` is that ``create_revision``. Every new leader
  key is created at a later etcd revision, so epochs grow across leaders, are never
  reused and never go back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from app.cluster.lease import LeaseVerdict, LeaseView, judge, stop_margin
from app.store.base import JsonObject
from app.store.etcd import EtcdClient, EtcdError, FenceLost
from app.store.etcd.client import (
    KeyValue,
    compare_create_revision,
    put_op,
    range_op,
)

log = logging.getLogger(__name__)

LEADER_KEY = "cluster/leader"
RETRY_S = 0.2


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """A master as the others see it: its name and the base URL clients reach it at."""

    name: str
    url: str

    def encode(self) -> bytes:
        return json.dumps({"name": self.name, "url": self.url}, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    """Who leads, as the leader key says, and since which revision (its epoch)."""

    node: NodeIdentity
    epoch: int
    lease_id: int

    @classmethod
    def from_kv(cls, kv: KeyValue) -> LeaderInfo:
        try:
            value = json.loads(kv.value)
            node = NodeIdentity(str(value["name"]), str(value["url"]))
        except (ValueError, KeyError, TypeError):
            node = NodeIdentity(kv.value.decode(errors="replace"), "")
        return cls(node=node, epoch=kv.create_revision, lease_id=kv.lease)


@dataclass(frozen=True, slots=True)
class Term:
    """One leadership of this master: its lease and the leader key it created."""

    node: NodeIdentity
    lease_id: int
    ttl_s: int
    #: The leader key's create revision: the term's identity, compared by the fence.
    epoch: int


class Elector:
    """Campaigns, holds and resigns the leadership of ``node`` (see the module doc).

    ``run()`` does it until cancelled; :attr:`leading` and :attr:`term` say where it
    stands now; :meth:`roles` yields each change of term (``None``: not leading).
    """

    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        node: NodeIdentity,
        *,
        lease_s: int,
        clock: Callable[[], float] = time.monotonic,
        margin_s: float | None = None,
    ) -> None:
        self._client = client
        self.key = f"{prefix}/{LEADER_KEY}"
        self.node = node
        self.lease_s = lease_s
        self._clock = clock
        self._margin_s = stop_margin(lease_s) if margin_s is None else margin_s
        self._term: Term | None = None
        self._renewed_sent_at = 0.0
        self._changed = asyncio.Condition()
        self._version = 0

    # --- where this master stands --------------------------------------------------

    def verdict(self) -> LeaseVerdict | None:
        """The lease rule now, for the term held (None when there is none)."""
        if self._term is None:
            return None
        return judge(
            LeaseView(
                ttl_s=self._term.ttl_s,
                renewed_sent_at=self._renewed_sent_at,
                now=self._clock(),
                stop_margin_s=self._margin_s,
            )
        )

    @property
    def leading(self) -> bool:
        """True only while this master is sure its lease holds: ask before every act."""
        verdict = self.verdict()
        return verdict is not None and verdict.leading

    @property
    def term(self) -> Term | None:
        """The current term, while :attr:`leading`."""
        return self._term if self.leading else None

    async def roles(self) -> AsyncIterator[Term | None]:
        """The term now, then after each change (a slow reader sees the newest only)."""
        seen = -1
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._moved_on, seen))
                seen = self._version
            yield self._term

    def _moved_on(self, seen: int) -> bool:
        return self._version != seen

    # --- the loop ------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign, hold while the lease is sure, campaign again; until cancelled
        (cancelling resigns a term held)."""
        try:
            while True:
                try:
                    term = await self.campaign()
                except EtcdError as exc:
                    log.warning("campaign for leadership failed: %s", exc)
                    await asyncio.sleep(RETRY_S)
                    continue
                if term is None:
                    await self._wait_for_vacancy()
                    continue
                reason = await self._hold(term)
                await self._end_term(term, reason)
        finally:
            with contextlib.suppress(EtcdError, asyncio.CancelledError):
                await asyncio.shield(self.resign())

    async def campaign(self) -> Term | None:
        """Create the leader key under a new lease if it is absent; the term, or None
        when another master leads (the lease is then revoked)."""
        sent = self._clock()
        lease_id, ttl = await self._client.lease_grant(self.lease_s)
        result = await self._client.txn(
            [compare_create_revision(self.key, 0)],
            [put_op(self.key, self.node.encode(), lease=lease_id), range_op(self.key)],
            [range_op(self.key)],
        )
        if not result.succeeded:
            await self._client.lease_revoke(lease_id)
            return None
        [created] = result.ranges[0].kvs
        term = Term(self.node, lease_id, ttl, created.create_revision)
        self._renewed_sent_at = sent
        await self._set_term(term)
        log.info("%s leads (epoch %d, lease %d s)", self.node.name, term.epoch, ttl)
        return term

    async def resign(self) -> None:
        """Give the leadership up now: the lease is revoked, the key goes with it."""
        term, self._term = self._term, None
        if term is None:
            return
        await self._notify()
        await self._client.lease_revoke(term.lease_id, timeout_s=self._margin_s)
        log.info("%s resigned the leadership (epoch %d)", self.node.name, term.epoch)

    async def leader(self) -> LeaderInfo | None:
        """Who leads now, as etcd says (a linearizable read)."""
        found = await self._client.range(self.key)
        return LeaderInfo.from_kv(found.kvs[0]) if found.kvs else None

    # --- plumbing ------------------------------------------------------------------

    async def _hold(self, term: Term) -> str:
        """Renew the lease until this master can no longer be sure of it; returns why."""
        while True:
            verdict = self.verdict()
            if verdict is None or not verdict.leading:
                return "its lease could no longer be confirmed in time"
            now = self._clock()
            if now < verdict.renew_at:
                await asyncio.sleep(min(verdict.renew_at, verdict.act_until) - now)
                continue
            sent = self._clock()
            # bounded, so that a member that stopped answering is left for the next one
            # while the lease still holds
            timeout_s = min(verdict.act_until - sent, max(term.ttl_s / 4, 0.5))
            try:
                ttl = await self._client.lease_keepalive(
                    term.lease_id, timeout_s=max(timeout_s, 0.05)
                )
            except EtcdError as exc:
                log.warning("renewing the leader lease failed: %s", exc)
                await asyncio.sleep(min(RETRY_S, max(verdict.act_until - self._clock(), 0)))
                continue
            if ttl <= 0:
                return "its lease expired"
            self._renewed_sent_at = max(self._renewed_sent_at, sent)

    async def _end_term(self, term: Term, reason: str) -> None:
        log.warning("%s stops leading (epoch %d): %s", self.node.name, term.epoch, reason)
        if self._term is term:
            self._term = None
            await self._notify()
        with contextlib.suppress(EtcdError):
            await self._client.lease_revoke(term.lease_id, timeout_s=self._margin_s)

    async def _wait_for_vacancy(self) -> None:
        """Until the leader key is deleted (resign, expiry), or a lease's time passed:
        a watch that a partition silenced is not waited on for ever."""
        try:
            async with asyncio.timeout(self.lease_s):
                found = await self._client.range(self.key)
                if not found.kvs:
                    return
                async for response in self._client.watch(
                    self.key, start_revision=found.revision + 1
                ):
                    if response.canceled or any(e.deleted for e in response.events):
                        return
        except (TimeoutError, EtcdError):
            await asyncio.sleep(RETRY_S)

    async def _set_term(self, term: Term | None) -> None:
        self._term = term
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._version += 1
            self._changed.notify_all()


class LeaderFence:
    """The :class:`~app.store.etcd.Fence` of an :class:`Elector`'s current term."""

    def __init__(self, elector: Elector) -> None:
        self._elector = elector

    @property
    def key(self) -> str:
        return self._elector.key

    def compares(self) -> Sequence[JsonObject]:
        """The write holds only while the leader key is the one this term created;
        refused here already when this master is not sure it leads."""
        term = self._elector.term
        if term is None:
            raise FenceLost("this master does not lead: the write is refused")
        return [compare_create_revision(self.key, term.epoch)]

    def holds(self, kv: KeyValue | None) -> bool:
        term = self._elector.term
        return term is not None and kv is not None and kv.create_revision == term.epoch
