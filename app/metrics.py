"""Prometheus metrics, one registry per application instance.

The shipped alert rules (``deploy/prometheus/rules.yml``) and Grafana dashboard
(``deploy/grafana/dashboard.json``) use these names; the tests check both against what
a running server exports.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.version import version

#: The controllers a location can have (``engine_location_controller``'s label values).
CONTROLLERS = ("edge", "master", "none")


@dataclass(frozen=True, slots=True)
class LocationFacts:
    """One location as this server knows it, for the per-location metrics.

    The master knows every decision; an edge only whether it runs its own devices, so
    the fields it cannot know are None and left out.
    """

    edge_id: str
    controlled_here: bool
    controller: str | None = None
    online: bool | None = None
    epoch: int | None = None
    failover_pending: bool | None = None
    failover: bool | None = None
    decided_at: datetime | None = None


class LocationCollector(Collector):
    """The per-location gauges, read from ``source`` at every scrape."""

    def __init__(self, source: Callable[[], Iterable[LocationFacts]]) -> None:
        self._source = source

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        here, controller, online, epoch, pending, age, failover = families
        now = time.time()
        for facts in self._source():
            labels = [facts.edge_id]
            here.add_metric(labels, 1 if facts.controlled_here else 0)
            if facts.controller is not None:
                for name in CONTROLLERS:
                    controller.add_metric([facts.edge_id, name], facts.controller == name)
            if facts.online is not None:
                online.add_metric(labels, facts.online)
            if facts.epoch is not None:
                epoch.add_metric(labels, facts.epoch)
            if facts.failover_pending is not None:
                pending.add_metric(labels, facts.failover_pending)
            if facts.failover is not None:
                failover.add_metric(labels, facts.failover)
            if facts.decided_at is not None:
                age.add_metric(labels, max(0.0, now - facts.decided_at.timestamp()))
        return families

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        one = ["edge_id"]
        return [
            GaugeMetricFamily(
                "engine_location_controlled_here",
                "1 while this server runs the location's modules (two servers at 1: a split)",
                labels=one,
            ),
            GaugeMetricFamily(
                "engine_location_controller",
                "master: who controls the location (1 for the current controller)",
                labels=["edge_id", "controller"],
            ),
            GaugeMetricFamily(
                "engine_location_online", "master: 1 while the edge's link is up", labels=one
            ),
            GaugeMetricFamily(
                "engine_location_epoch", "master: the location's control epoch", labels=one
            ),
            GaugeMetricFamily(
                "engine_location_failover_pending",
                "master: 1 while the master waits to take the location over",
                labels=one,
            ),
            GaugeMetricFamily(
                "engine_location_seconds_since_decision",
                "master: seconds since the last decision about the location",
                labels=one,
            ),
            GaugeMetricFamily(
                "engine_location_failover_enabled",
                "master: 1 while the master takes the location over when its edge fails "
                "(its failover setting, as the master applies it now)",
                labels=one,
            ),
        ]


def handover_reason(kind: str, by: str | None) -> str:
    """The ``reason`` label of ``engine_handovers_total`` for a decision of ``kind``."""
    if kind == "restore":
        return "restore_operator" if by else "restore_window"
    return {"connected": "edge_connected"}.get(kind, kind)


class Metrics:
    """The engine's instruments; a private registry keeps apps in one process apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "engine_http_requests",
            "HTTP requests answered",
            ["method", "operation", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "engine_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "operation"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.ready = Gauge("engine_ready", "1 once boot is complete", registry=self.registry)
        self.modules_running = Gauge(
            "engine_modules_running", "modules running on this server", registry=self.registry
        )
        self.store_seq = Gauge(
            "engine_store_seq",
            "newest change sequence of this server's store",
            registry=self.registry,
        )
        self.replica_seq = Gauge(
            "engine_replica_seq",
            "edge: the master sequence its replica has applied",
            registry=self.registry,
        )
        self.replication_skipped = Counter(
            "engine_replication_skipped_documents",
            "changes left out of link replication because no link frame can carry them",
            registry=self.registry,
        )
        self.tombstones_purged = Counter(
            "engine_tombstones_purged",
            "deletions forgotten after ENGINE_TOMBSTONE_RETENTION_S",
            registry=self.registry,
        )
        self.control_events_pruned = Counter(
            "engine_control_events_pruned",
            "control events dropped past the per-edge count or age limit",
            registry=self.registry,
        )
        self.store_writable = Gauge(
            "engine_store_writable",
            "0 while this server's store refuses the writes of control decisions, else 1",
            registry=self.registry,
        )
        self.store_writable.set(1)
        self.store_write_failures = Counter(
            "engine_store_write_failures",
            "control decisions' writes the store refused (each retry counts)",
            registry=self.registry,
        )
        self.links = Gauge(
            "engine_links_connected", "control links connected", registry=self.registry
        )
        self.link_state = Gauge(
            "engine_link_state",
            "edge: 1 for the state its link to the master is in now "
            "(up, closed, refused, tls, unreachable), 0 for the others",
            ["state"],
            registry=self.registry,
        )
        self.link_duplicates = Counter(
            "engine_link_duplicates_refused",
            "master: links refused because another process of the same edge holds one",
            ["edge_id"],
            registry=self.registry,
        )
        self.tls_expiry = Gauge(
            "engine_tls_certificate_expiry_timestamp_seconds",
            "when a TLS certificate expires (POSIX time): this server's own, and on an "
            "edge the master's as its link last saw it",
            ["certificate"],
            registry=self.registry,
        )
        self.handovers = Counter(
            "engine_handovers",
            "master: changes of a location's controller, by whom they went to and why "
            "(failover, takeover, resume, restore_window, restore_operator, edge_connected, "
            "unconfirmed)",
            ["edge_id", "to", "reason"],
            registry=self.registry,
        )
        self.link_refusals = Counter(
            "engine_link_refusals",
            "master: control-link handshakes refused (edge_id: a known edge, else unknown)",
            ["edge_id"],
            registry=self.registry,
        )
        self.master_link_up = Gauge(
            "engine_master_link_up",
            "edge: 1 while its control link to the master is up",
            registry=self.registry,
        )
        self.build = Info("engine_build", "what this server runs", registry=self.registry)
        self.tasks_dead = Gauge(
            "engine_tasks_dead",
            "background tasks that died (each makes /api/ready answer 503)",
            registry=self.registry,
        )
        self.replication_error = Gauge(
            "engine_replication_error",
            "edge: 1 while its replica cannot catch up with the master (retried), else 0",
            registry=self.registry,
        )
        self.replication_failures = Counter(
            "engine_replication_failures",
            "edge: catch-ups with the master that failed (each retry counts)",
            registry=self.registry,
        )
        self.replica_rebuilds = Counter(
            "engine_replica_rebuilds",
            "edge: corrupt replicas set aside at boot to be rebuilt from the master",
            registry=self.registry,
        )

    def describe_build(self, role: str) -> None:
        """Fill ``engine_build_info``: the version, Python and this server's role."""
        self.build.info({"version": version(), "python": platform.python_version(), "role": role})

    def watch_locations(self, source: Callable[[], Iterable[LocationFacts]]) -> None:
        """Export the per-location gauges, read from ``source`` at every scrape."""
        self.registry.register(LocationCollector(source))

    def render(self) -> bytes:
        return generate_latest(self.registry)
