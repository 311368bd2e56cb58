"""One process per edge: the master keeps the first link and refuses a second process.

Every edge process sends a random instance id in its hello, new at each start. While an
edge's link is alive (or being admitted), a process with another instance id that
authenticates as that edge is a duplicate — a copied VM or appliance image — and is
refused (close code 4409, "duplicate"); the same process reconnecting replaces its
link as before, and an edge too old to send an instance id is never taken for one.
Once the link is found dead, any process of the edge gets in: a restarted edge has a
new instance id.

What the master remembers of each duplicate is an episode: one refused process
against one link holder. Only its first refusal is recorded as a ControlEvent, and
while it lasts the holder keeps its place for ``hold_s`` after its link ends, so a
blip of the holder's link does not let the duplicate in ahead of it: the two never
alternate. An episode ends when the duplicate has not tried for ``quiet_s``, or is let
in once the holder stayed away.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.control.clock import as_utc

#: Seconds without a refusal after which a duplicate is taken to have gone.
QUIET_S = 60.0
#: The longest reason a websocket close frame carries (RFC 6455: 123 bytes).
MAX_CLOSE_REASON = 123


@dataclass(frozen=True, eq=False)
class Holder:
    """The process that holds an edge's link, or is being admitted with it."""

    instance_id: str | None
    address: str
    since: datetime


def is_duplicate(holder: Holder | None, instance_id: str | None) -> bool:
    """Whether a process with ``instance_id`` is another process than the holder's.

    Without an instance id on either side (an older edge) nobody can tell: the newer
    connection replaces the older, as it always did.
    """
    if holder is None or holder.instance_id is None or instance_id is None:
        return False
    return holder.instance_id != instance_id


@dataclass(frozen=True)
class Duplicate:
    """A process refused as an edge whose link another holds, and who holds it."""

    instance_id: str | None
    address: str
    first_at: datetime
    last_at: datetime
    refusals: int
    holder: Holder
    #: When the holder's link ended, while this episode lasts.
    holder_gone_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance_id,
            "address": self.address,
            "at": self.first_at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "refusals": self.refusals,
            "linked_instance": self.holder.instance_id,
            "linked_address": self.holder.address,
            "linked_since": self.holder.since.isoformat(),
        }

    def reason(self) -> str:
        """The close reason the refused process reads: it says "duplicate" first."""
        holder = self.holder
        text = (
            f"duplicate: this edge is linked from {holder.address} since "
            f"{as_utc(holder.since):%H:%M:%S}Z (instance {holder.instance_id})"
        )
        return text.encode()[:MAX_CLOSE_REASON].decode(errors="ignore")


class Duplicates:
    """Each edge's current duplicate episode, if any."""

    def __init__(self, *, hold_s: float, quiet_s: float = QUIET_S) -> None:
        self._hold_s = hold_s
        self._quiet_s = quiet_s
        self._episodes: dict[str, Duplicate] = {}

    def current(self, edge_id: str, now: datetime) -> Duplicate | None:
        """The edge's duplicate, unless it stopped trying ``quiet_s`` ago."""
        episode = self._episodes.get(edge_id)
        if episode is None:
            return None
        if (as_utc(now) - episode.last_at).total_seconds() >= self._quiet_s:
            del self._episodes[edge_id]
            return None
        return episode

    def refused(
        self, edge_id: str, instance_id: str | None, address: str, holder: Holder, now: datetime
    ) -> tuple[Duplicate, bool]:
        """Count a refusal; returns the episode and whether this refusal began it."""
        now = as_utc(now)
        episode = self.current(edge_id, now)
        same = (
            episode is not None
            and episode.instance_id == instance_id
            and episode.holder.instance_id == holder.instance_id
        )
        if episode is not None and same:
            episode = replace(episode, last_at=now, refusals=episode.refusals + 1, address=address)
            self._episodes[edge_id] = episode
            return episode, False
        episode = Duplicate(instance_id, address, now, now, 1, holder)
        self._episodes[edge_id] = episode
        return episode, True

    def held(self, edge_id: str, now: datetime) -> Holder | None:
        """The holder whose place is kept although its link ended (within ``hold_s``)."""
        episode = self.current(edge_id, now)
        if episode is None or episode.holder_gone_at is None:
            return None
        if (as_utc(now) - episode.holder_gone_at).total_seconds() >= self._hold_s:
            return None
        return episode.holder

    def released(self, edge_id: str, holder: Holder, now: datetime) -> None:
        """The holder's link ended: its place is kept for ``hold_s`` while a duplicate tries."""
        episode = self._episodes.get(edge_id)
        if episode is not None and episode.holder.instance_id == holder.instance_id:
            self._episodes[edge_id] = replace(episode, holder_gone_at=as_utc(now))

    def admitted(self, edge_id: str, holder: Holder) -> None:
        """A process of the edge was let in: the holder back, or another in its place."""
        episode = self._episodes.get(edge_id)
        if episode is None:
            return
        if holder.instance_id is not None and holder.instance_id == episode.holder.instance_id:
            self._episodes[edge_id] = replace(episode, holder=holder, holder_gone_at=None)
        else:
            del self._episodes[edge_id]
