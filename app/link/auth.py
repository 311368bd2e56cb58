"""Mutual authentication of the link with the edge's shared secret.

Each side proves it knows the secret with an HMAC-SHA256 over both nonces and the edge
id. The two directions use distinct labels, so a proof taken from one direction can
never be reflected back as the other side's proof.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable

_EDGE_LABEL = "engine link v1: edge proof"
_MASTER_LABEL = "engine link v1: master proof"
_QUESTION_LABEL = "engine witness v1: question"
_ANSWER_LABEL = "engine witness v1: answer"


class AuthFailed(Exception):
    """The handshake failed. The reason is for our log only: the peer learns nothing."""


def new_nonce() -> str:
    """32 random bytes as hex."""
    return secrets.token_hex(32)


def edge_proof(secret: str, edge_id: str, master_nonce: str, edge_nonce: str) -> str:
    """What the edge sends in its hello to prove it knows the secret."""
    return _proof(_EDGE_LABEL, secret, edge_id, master_nonce, edge_nonce)


def master_proof(secret: str, edge_id: str, master_nonce: str, edge_nonce: str) -> str:
    """What the master sends in its welcome to prove it knows the secret too."""
    return _proof(_MASTER_LABEL, secret, edge_id, master_nonce, edge_nonce)


def witness_question_proof(secret: str, edge_id: str, nonce: str, asker: str) -> str:
    """What the side asking a witness sends: it knows the edge's secret."""
    message = json.dumps([_QUESTION_LABEL, edge_id, nonce, asker]).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def witness_answer_proof(secret: str, edge_id: str, nonce: str, controls: bool, node: str) -> str:
    """What a witness signs its answer with: the answer to this very question, by ``node``."""
    message = json.dumps([_ANSWER_LABEL, edge_id, nonce, controls, node]).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(expected: str, given: str) -> bool:
    """Compare proofs in constant time."""
    return hmac.compare_digest(expected.encode(), given.encode())


def _proof(label: str, secret: str, edge_id: str, master_nonce: str, edge_nonce: str) -> str:
    # A JSON array keeps the parts unambiguous whatever characters the edge id holds.
    message = json.dumps([label, edge_id, master_nonce, edge_nonce]).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class NonceRegistry:
    """Remembers nonces for ``ttl`` seconds so that none is accepted twice.

    Memory stays bounded: entries older than ``ttl`` are dropped, and past
    ``max_entries`` the oldest go first.
    """

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def claim(self, nonce: str) -> bool:
        """Record the nonce's use; False when it was already used within ``ttl``."""
        now = self._clock()
        self._forget_before(now - self._ttl)
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        if len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)
        return True

    def _forget_before(self, cutoff: float) -> None:
        while self._seen and next(iter(self._seen.values())) <= cutoff:
            self._seen.popitem(last=False)


class FailureThrottle:
    """Refuses a peer after ``max_failures`` failed handshakes within ``window`` seconds.

    ``peer`` is whatever identifies an attacker best to the caller (usually the client
    address). Peers without a recent failure are swept once per window.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_failures = max_failures
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._last_sweep = clock()

    def __len__(self) -> int:
        """How many peers have failures on record."""
        return len(self._failures)

    def allowed(self, peer: str) -> bool:
        return self.retry_after(peer) <= 0.0

    def retry_after(self, peer: str) -> float:
        """Seconds until the peer may try again (0 when it may now)."""
        failures = self._failures.get(peer)
        if failures is None:
            return 0.0
        now = self._clock()
        self._drop_expired(failures, now)
        if len(failures) < self._max_failures:
            return 0.0
        return failures[0] + self._window - now

    def record_failure(self, peer: str) -> None:
        now = self._clock()
        self._sweep(now)
        failures = self._failures.setdefault(peer, deque(maxlen=self._max_failures))
        failures.append(now)

    def record_success(self, peer: str) -> None:
        self._failures.pop(peer, None)

    def _drop_expired(self, failures: deque[float], now: float) -> None:
        while failures and failures[0] <= now - self._window:
            failures.popleft()

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < self._window:
            return
        self._last_sweep = now
        cutoff = now - self._window
        stale = [peer for peer, times in self._failures.items() if not times or times[-1] <= cutoff]
        for peer in stale:
            del self._failures[peer]
