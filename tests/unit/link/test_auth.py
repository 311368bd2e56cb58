from __future__ import annotations

import pytest

from app.link.auth import (
    FailureThrottle,
    NonceRegistry,
    edge_proof,
    master_proof,
    new_nonce,
    verify,
)

SECRET = "s3cret"
MASTER_NONCE = "1" * 64
EDGE_NONCE = "2" * 64


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_nonces_are_32_random_bytes_in_hex() -> None:
    nonces = {new_nonce() for _ in range(100)}

    assert len(nonces) == 100
    assert all(len(nonce) == 64 and int(nonce, 16) >= 0 for nonce in nonces)


def test_proof_is_stable_for_the_same_inputs() -> None:
    proof = edge_proof(SECRET, "edge-1", MASTER_NONCE, EDGE_NONCE)

    assert verify(proof, edge_proof(SECRET, "edge-1", MASTER_NONCE, EDGE_NONCE))


@pytest.mark.parametrize(
    "changed",
    [
        ("other", "edge-1", MASTER_NONCE, EDGE_NONCE),
        (SECRET, "edge-2", MASTER_NONCE, EDGE_NONCE),
        (SECRET, "edge-1", "3" * 64, EDGE_NONCE),
        (SECRET, "edge-1", MASTER_NONCE, "3" * 64),
        (SECRET, "edge-1", EDGE_NONCE, MASTER_NONCE),
    ],
)
def test_proof_binds_secret_edge_and_both_nonces(changed: tuple[str, str, str, str]) -> None:
    proof = edge_proof(SECRET, "edge-1", MASTER_NONCE, EDGE_NONCE)

    assert not verify(proof, edge_proof(*changed))


def test_proofs_of_the_two_directions_differ() -> None:
    """A proof seen in one direction cannot be reflected as the other side's proof."""
    assert edge_proof(SECRET, "e", MASTER_NONCE, EDGE_NONCE) != master_proof(
        SECRET, "e", MASTER_NONCE, EDGE_NONCE
    )


def test_edge_id_cannot_be_shifted_into_a_nonce() -> None:
    assert edge_proof(SECRET, "a", "b" + "0" * 63, EDGE_NONCE) != edge_proof(
        SECRET, "ab", "0" * 63, EDGE_NONCE
    )


def test_verify_refuses_garbage_without_raising() -> None:
    assert not verify("a" * 64, "ünïcode")
    assert not verify("a" * 64, "")


def test_nonce_registry_refuses_a_nonce_seen_within_ttl() -> None:
    clock = FakeClock()
    registry = NonceRegistry(ttl=30.0, clock=clock)

    assert registry.claim("n1")
    assert not registry.claim("n1")
    clock.now += 29.9
    assert not registry.claim("n1")
    assert registry.claim("n2")


def test_nonce_registry_forgets_after_ttl() -> None:
    clock = FakeClock()
    registry = NonceRegistry(ttl=30.0, clock=clock)
    registry.claim("n1")
    clock.now += 30.0

    assert registry.claim("n2")
    assert len(registry) == 1
    assert registry.claim("n1")


def test_nonce_registry_memory_is_capped() -> None:
    registry = NonceRegistry(ttl=30.0, max_entries=3, clock=FakeClock())
    for nonce in ["a", "b", "c", "d"]:
        assert registry.claim(nonce)

    assert len(registry) == 3
    assert not registry.claim("d")


def test_throttle_blocks_after_max_failures_within_window() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(max_failures=3, window=60.0, clock=clock)
    for _ in range(2):
        throttle.record_failure("10.0.0.1")
        clock.now += 10

    assert throttle.allowed("10.0.0.1")
    throttle.record_failure("10.0.0.1")

    assert not throttle.allowed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == pytest.approx(40.0)
    assert throttle.allowed("10.0.0.2")


def test_throttle_lets_a_peer_back_as_old_failures_leave_the_window() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(max_failures=2, window=60.0, clock=clock)
    throttle.record_failure("peer")
    clock.now += 50
    throttle.record_failure("peer")
    assert not throttle.allowed("peer")

    clock.now += 10

    assert throttle.allowed("peer")
    assert throttle.retry_after("peer") == 0.0
    throttle.record_failure("peer")
    assert throttle.retry_after("peer") == pytest.approx(50.0)


def test_throttle_success_clears_the_record() -> None:
    throttle = FailureThrottle(max_failures=1, window=60.0, clock=FakeClock())
    throttle.record_failure("peer")
    assert not throttle.allowed("peer")

    throttle.record_success("peer")

    assert throttle.allowed("peer")


def test_throttle_sweeps_peers_without_recent_failures() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(max_failures=5, window=60.0, clock=clock)
    for peer in range(100):
        throttle.record_failure(f"10.0.0.{peer}")
    clock.now += 61

    throttle.record_failure("10.0.1.1")

    assert len(throttle) == 1


def test_throttle_checks_keep_no_record_of_clean_peers() -> None:
    throttle = FailureThrottle(clock=FakeClock())

    assert throttle.allowed("peer")
    assert throttle.retry_after("peer") == 0.0
    assert len(throttle) == 0
