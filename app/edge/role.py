"""The edge role: boot from the local replica, keep the link, run the location.

DESIGN §5: 1) load only its EdgeControl document; 2) the systems under its control;
3) the list of modules it controls; 4) connect to the master. Whether the modules
run follows the master's control messages while the link is up, and the disconnect
rule (wait ``ENGINE_LINK_RETRY_S``, then a failed attempt) while it is down. Each job
is its own class, built by :mod:`app.edge.compose`: this one starts and stops them.
"""

from __future__ import annotations

from typing import Any

from app.edge.boot import EdgeBoot
from app.edge.follower import ReplicaFollower
from app.edge.forwarder import StatusForwarder
from app.edge.uplink import CurrentLink, Uplink
from app.edge.watcher import ConfigurationWatcher
from app.edge.witness import MasterWitness
from app.link import CloseCode
from app.metrics import Metrics
from app.services.certificates import CertificateExpiry
from app.services.tasks import BackgroundTasks


class EdgeRole:
    """Opens the replica, boots, then runs the link and its followers until stopped."""

    def __init__(
        self,
        metrics: Metrics,
        boot: EdgeBoot,
        follower: ReplicaFollower,
        forwarder: StatusForwarder,
        uplink: Uplink,
        current: CurrentLink,
        watcher: ConfigurationWatcher,
        witness: MasterWitness,
        certificates: CertificateExpiry,
        tasks: BackgroundTasks,
    ) -> None:
        self._metrics = metrics
        self._boot = boot
        self._follower = follower
        self._forwarder = forwarder
        self._uplink = uplink
        self._current = current
        self._watcher = watcher
        self._witness = witness
        self._certificates = certificates
        self._tasks = tasks

    async def start(self) -> None:
        replica = self._follower.replica
        await replica.open()
        if replica.set_aside is not None:
            self._metrics.replica_rebuilds.inc()
        self._tasks.spawn(self._run(), name="edge boot", forever=False)
        self._tasks.spawn(self._certificates.run(), name="certificates")

    async def _run(self) -> None:
        try:
            modules = await self._boot.load()
        except Exception:
            self._boot.failed()
            raise  # logged with its traceback by the task's supervision
        self._tasks.spawn(self._forwarder.run(), name="status forwarder")
        self._tasks.spawn(self._uplink.run_forever(), name="uplink")
        self._tasks.spawn(self._witness.run(), name="master witness")
        self._tasks.spawn(self._watcher.run(), name="change watch")
        self._tasks.spawn(self._follower.run(), name="replica follow")
        self._boot.finish(modules)

    def live_counts(self) -> dict[str, Any]:
        """The edge's part of ``/api/ready``: its link and replica now."""
        set_aside = self._follower.replica.set_aside
        return {
            "master_connected": self._current.connected,
            "replica_seq": self._follower.replica.seq,
            "replication_error": self._follower.failure.as_json(),
            "replica_set_aside": set_aside.as_json() if set_aside else None,
        }

    async def stop(self) -> None:
        self._metrics.ready.set(0)
        await self._tasks.stop()
        link = self._current.link
        if link is not None:
            await link.close(CloseCode.GOING_AWAY, "edge shutting down")
