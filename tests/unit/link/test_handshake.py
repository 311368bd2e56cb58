from __future__ import annotations

import pytest

from app.link.auth import AuthFailed, NonceRegistry, edge_proof, master_proof
from app.link.handshake import EdgeHandshake, MasterHandshake
from app.link.messages import Challenge, Hello, Welcome

SECRET = "edge-secret"


def edge(secret: str = SECRET, edge_id: str = "edge-1") -> EdgeHandshake:
    return EdgeHandshake(
        edge_id,
        secret,
        boot_time=1700000000.0,
        devices_loaded=True,
        replica_seq=12,
        commit="abc",
    )


def master(nonces: NonceRegistry | None = None) -> MasterHandshake:
    return MasterHandshake(nonces or NonceRegistry(ttl=60.0))


def test_both_sides_authenticate_and_the_hello_carries_the_edge_state() -> None:
    master_side, edge_side = master(), edge()

    hello = edge_side.receive_challenge(master_side.start())
    master_side.receive(hello, [SECRET])
    welcome = master_side.welcome(master_booting=True, epoch=7)
    edge_side.receive_welcome(welcome)

    assert (hello.edge_id, hello.devices_loaded, hello.replica_seq, hello.commit) == (
        "edge-1",
        True,
        12,
        "abc",
    )
    assert (welcome.master_booting, welcome.epoch) == (True, 7)


def test_master_refuses_an_edge_with_the_wrong_secret() -> None:
    master_side = master()
    hello = edge(secret="guess").receive_challenge(master_side.start())

    with pytest.raises(AuthFailed, match="wrong proof"):
        master_side.receive(hello, [SECRET])


def test_during_a_rotation_either_secret_authenticates_and_the_one_used_is_named() -> None:
    master_side, edge_side = master(), edge(secret="previous")

    hello = edge_side.receive_challenge(master_side.start())

    assert master_side.receive(hello, [SECRET, "previous"]) == "previous"
    edge_side.receive_welcome(master_side.welcome(master_booting=False, epoch=1))


def test_master_refuses_an_unknown_edge() -> None:
    master_side = master()
    hello = edge(edge_id="nobody").receive_challenge(master_side.start())

    with pytest.raises(AuthFailed, match="unknown edge 'nobody'"):
        master_side.receive(hello, [])


def test_master_refuses_a_hello_made_for_another_challenge() -> None:
    old_hello = edge().receive_challenge(master().start())
    master_side = master()
    master_side.start()

    with pytest.raises(AuthFailed, match="wrong proof"):
        master_side.receive(old_hello, [SECRET])


def test_master_refuses_a_replayed_edge_nonce() -> None:
    nonces = NonceRegistry(ttl=60.0)
    fixed_challenge = lambda: "c" * 64  # noqa: E731 - a master whose nonce repeats
    first = MasterHandshake(nonces, make_nonce=fixed_challenge)
    hello = edge().receive_challenge(first.start())
    first.receive(hello, [SECRET])
    second = MasterHandshake(nonces, make_nonce=fixed_challenge)
    second.start()

    with pytest.raises(AuthFailed, match="replayed"):
        second.receive(hello, [SECRET])


def test_edge_refuses_a_master_that_does_not_know_the_secret() -> None:
    edge_side = edge()
    challenge = Challenge(nonce="d" * 64)
    hello = edge_side.receive_challenge(challenge)
    forged = master_proof("guess", "edge-1", challenge.nonce, hello.nonce)

    with pytest.raises(AuthFailed, match="does not know"):
        edge_side.receive_welcome(Welcome(proof=forged, master_booting=False, epoch=1))


def test_edge_refuses_its_own_proof_reflected_back_as_the_welcome() -> None:
    edge_side = edge()
    hello = edge_side.receive_challenge(Challenge(nonce="d" * 64))

    with pytest.raises(AuthFailed):
        edge_side.receive_welcome(Welcome(proof=hello.proof, master_booting=False, epoch=1))


def test_master_refuses_its_own_welcome_proof_reflected_as_a_hello() -> None:
    master_side = master()
    challenge = master_side.start()
    edge_nonce = "f" * 64
    reflected = Hello(
        edge_id="edge-1",
        boot_time=0.0,
        nonce=edge_nonce,
        proof=master_proof(SECRET, "edge-1", challenge.nonce, edge_nonce),
        devices_loaded=False,
        replica_seq=0,
    )

    with pytest.raises(AuthFailed):
        master_side.receive(reflected, [SECRET])
    assert edge_proof(SECRET, "edge-1", challenge.nonce, edge_nonce) != reflected.proof


def test_steps_out_of_order_are_programming_errors() -> None:
    hello = edge().receive_challenge(Challenge(nonce="d" * 64))

    with pytest.raises(RuntimeError):
        master().receive(hello, [SECRET])
    with pytest.raises(RuntimeError):
        master().welcome(master_booting=False, epoch=0)
    with pytest.raises(RuntimeError):
        edge().receive_welcome(Welcome(proof="e" * 64, master_booting=False, epoch=1))
