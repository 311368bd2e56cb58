"""The leader's rule: stop acting before the lease could have ended, whatever the clocks."""

from __future__ import annotations

import pytest

from app.cluster.lease import LeaseView, judge, stop_margin

TTL = 10.0


def view(
    now: float, *, renewed: float = 100.0, margin: float = 2.0, rate: float = 0.01
) -> LeaseView:
    return LeaseView(
        ttl_s=TTL, renewed_sent_at=renewed, now=now, stop_margin_s=margin, rate_error=rate
    )


def test_a_fresh_lease_leads_and_renews_a_third_of_the_way_through() -> None:
    verdict = judge(view(100.0))
    assert verdict.leading
    assert verdict.renew_at == pytest.approx(100.0 + TTL / 3)


def test_acting_stops_the_margin_before_the_slowest_clock_could_end_the_lease() -> None:
    verdict = judge(view(100.0))
    assert verdict.act_until == pytest.approx(100.0 + TTL * 0.99 - 2.0)
    assert judge(view(verdict.act_until - 0.001)).leading
    assert judge(view(verdict.act_until)).must_demote


def test_the_deadline_counts_from_when_the_renewal_was_sent_never_from_its_answer() -> None:
    """etcd restarts the TTL on receipt, after the send: the send time is the safe anchor."""
    late_answer = judge(view(105.0, renewed=100.0))
    assert late_answer.act_until < 100.0 + TTL


def test_a_process_frozen_past_its_lease_demotes_at_its_first_look() -> None:
    assert judge(view(100.0 + 2 * TTL)).must_demote


def test_a_faster_etcd_clock_only_shortens_the_lease() -> None:
    careful = judge(view(100.0, rate=0.05))
    assert careful.act_until < judge(view(100.0, rate=0.0)).act_until


@pytest.mark.parametrize("ttl", [2.0, 10.0, 60.0])
def test_the_default_margin_leaves_a_lost_renewal_harmless(ttl: float) -> None:
    """Two renewals fall inside the acting window: losing one never demotes."""
    margin = stop_margin(ttl)
    verdict = judge(LeaseView(ttl_s=ttl, renewed_sent_at=0.0, now=0.0, stop_margin_s=margin))
    assert verdict.act_until > 2 * verdict.renew_at
    assert 0 < margin < ttl / 2
