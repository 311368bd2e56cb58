"""Prometheus metrics, one registry per application instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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

    def render(self) -> bytes:
        return generate_latest(self.registry)
