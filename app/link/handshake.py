"""The link handshake as two pure state machines, one per side (DESIGN §6).

master → challenge; edge → hello; master → welcome. Both sides prove they know the
edge's secret. Deciding who controls the devices happens after the handshake, in the
master's negotiation, and is sent as a separate ``control`` frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from app.link.auth import AuthFailed, NonceRegistry, edge_proof, master_proof, new_nonce, verify
from app.link.messages import Challenge, Hello, Welcome


class MasterHandshake:
    """Authenticates one incoming edge: ``start()``, ``receive(hello)``, ``welcome()``."""

    def __init__(self, nonces: NonceRegistry, *, make_nonce: Callable[[], str] = new_nonce) -> None:
        self._nonces = nonces
        self._make_nonce = make_nonce
        self._challenge: Challenge | None = None
        self._authenticated: tuple[Hello, str] | None = None

    def start(self) -> Challenge:
        self._challenge = Challenge(nonce=self._make_nonce())
        return self._challenge

    def receive(self, hello: Hello, secrets: Sequence[str]) -> str:
        """Check the edge's proof against its valid ``secrets`` (none: no such edge).

        Returns the secret the proof matched, or raises AuthFailed. The caller looks
        the secrets up by ``hello.edge_id``, so the lookup may be async.
        """
        if self._challenge is None:
            raise RuntimeError("receive() before start()")
        # A proof is computed even for an unknown edge, so the time taken does not
        # tell the peer which edge ids exist.
        nonce = self._challenge.nonce
        matched = None
        for secret in secrets or [""]:
            if verify(edge_proof(secret, hello.edge_id, nonce, hello.nonce), hello.proof):
                matched = matched or secret
        if not secrets:
            raise AuthFailed(f"unknown edge {hello.edge_id!r}")
        if matched is None:
            raise AuthFailed("wrong proof")
        if not self._nonces.claim(hello.nonce):
            raise AuthFailed("replayed nonce")
        self._authenticated = (hello, matched)
        return matched

    def welcome(self, *, master_booting: bool, epoch: int) -> Welcome:
        """The welcome for the authenticated edge, carrying the master's own proof."""
        if self._challenge is None or self._authenticated is None:
            raise RuntimeError("welcome() before a successful receive()")
        hello, secret = self._authenticated
        proof = master_proof(secret, hello.edge_id, self._challenge.nonce, hello.nonce)
        return Welcome(proof=proof, master_booting=master_booting, epoch=epoch)


class EdgeHandshake:
    """Authenticates the edge to the master and the master to the edge."""

    def __init__(
        self,
        edge_id: str,
        secret: str,
        *,
        boot_time: float,
        devices_loaded: bool,
        replica_seq: int,
        commit: str | None,
        instance_id: str | None = None,
        make_nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self._edge_id = edge_id
        self._instance_id = instance_id
        self._secret = secret
        self._boot_time = boot_time
        self._devices_loaded = devices_loaded
        self._replica_seq = replica_seq
        self._commit = commit
        self._make_nonce = make_nonce
        self._hello: Hello | None = None
        self._master_nonce: str | None = None

    def receive_challenge(self, challenge: Challenge) -> Hello:
        nonce = self._make_nonce()
        self._master_nonce = challenge.nonce
        self._hello = Hello(
            edge_id=self._edge_id,
            boot_time=self._boot_time,
            nonce=nonce,
            proof=edge_proof(self._secret, self._edge_id, challenge.nonce, nonce),
            devices_loaded=self._devices_loaded,
            replica_seq=self._replica_seq,
            commit=self._commit,
            instance_id=self._instance_id,
        )
        return self._hello

    def receive_welcome(self, welcome: Welcome) -> None:
        """Raise AuthFailed unless the welcome proves the master knows our secret."""
        if self._hello is None or self._master_nonce is None:
            raise RuntimeError("receive_welcome() before receive_challenge()")
        expected = master_proof(self._secret, self._edge_id, self._master_nonce, self._hello.nonce)
        if not verify(expected, welcome.proof):
            raise AuthFailed("the master does not know this edge's secret")
