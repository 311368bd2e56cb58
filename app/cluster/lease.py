"""When a leader must stop acting: a pure decision over its lease as it last renewed it.

etcd counts a lease's TTL from when its leader *received* the keepalive, which is
after this process *sent* it; so the only safe anchor here is the send time of the
last keepalive etcd answered with a TTL. From then, the lease holds for at least the
granted TTL as etcd's clock measures it. Two things make this process's view wrong,
and the rule allows for both:

- **Clock rates.** Our monotonic clock may run slower than etcd's leader's (etcd may
  expire the lease after fewer of our seconds): the TTL is shortened by
  ``rate_error`` (1 % by default, far above real drift, which is parts per million).
- **Stopping takes time.** Letting devices go and closing links is not instant, so
  the leader stops ``stop_margin_s`` before the earliest moment anyone else could take
  the key.

A process frozen past its lease (SIGSTOP, a VM paused) resumes with the monotonic
clock moved on, so its first look says "demote", before it acts on anything. Nothing
renews a term once demoted: it must campaign again, for a new term, as anyone else.
(An etcd leader change only lengthens leases: the new etcd leader restarts each TTL.)
"""

from __future__ import annotations

from dataclasses import dataclass

#: How much faster etcd's clock may run than ours.
RATE_ERROR = 0.01


@dataclass(frozen=True, slots=True)
class LeaseView:
    """What this process knows of its lease, at ``now`` (monotonic seconds)."""

    ttl_s: float
    #: When the last keepalive that etcd answered with a TTL was sent (or the grant).
    renewed_sent_at: float
    now: float
    stop_margin_s: float
    rate_error: float = RATE_ERROR


@dataclass(frozen=True, slots=True)
class LeaseVerdict:
    """Whether to keep acting, until when, and when to renew next."""

    leading: bool
    #: The monotonic time at which this process must have stopped acting.
    act_until: float
    #: When the next keepalive is due (a third of the TTL after the last one).
    renew_at: float

    @property
    def must_demote(self) -> bool:
        return not self.leading


def judge(view: LeaseView) -> LeaseVerdict:
    """Lead while ``now`` is before the lease's safe end minus the stop margin."""
    safe_end = view.renewed_sent_at + view.ttl_s * (1.0 - view.rate_error)
    act_until = safe_end - view.stop_margin_s
    return LeaseVerdict(
        leading=view.now < act_until,
        act_until=act_until,
        renew_at=view.renewed_sent_at + view.ttl_s / 3.0,
    )


def stop_margin(ttl_s: float) -> float:
    """The default stop margin: a fifth of the lease, at least half a second.

    With the default 10 s lease a leader renews every 3.3 s and stops acting 2.1 s
    before its lease could end, so one lost keepalive costs nothing and two do not
    make it late.
    """
    return max(0.5, ttl_s / 5.0)
