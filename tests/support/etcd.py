"""A real etcd cluster of three members on loopback ports, from Debian's ``etcd-server``.

Members run as child processes with their data on tmpfs where there is one (fsync is
then cheap), and elect a leader within a second (heartbeat 50 ms, election 500 ms).
Tests may kill, restart, freeze and thaw members; :meth:`EtcdCluster.url` gives a
database URL under a prefix of the test's own, so one cluster serves a whole session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ETCD = "etcd"
NOT_INSTALLED = (
    "etcd-server is not installed: `make test` installs it (tests/setup/system-packages.sh), "
    "or apt-get install etcd-server"
)
START_TIMEOUT_S = 20.0


def etcd_available() -> bool:
    return shutil.which(ETCD) is not None


def free_ports(count: int) -> list[int]:
    """Ports free on loopback now (held open together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class EtcdCluster:
    """Three members (by default); ``start()`` returns once all of them are healthy."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.token = f"engine-test-{uuid.uuid4().hex[:8]}"
        ports = free_ports(2 * size)
        self.members = [
            Member(
                name=f"m{n}",
                client_port=ports[2 * n],
                peer_port=ports[2 * n + 1],
                data_dir=root / f"m{n}",
                log_path=root / f"m{n}.log",
            )
            for n in range(size)
        ]

    @property
    def endpoints(self) -> str:
        """``HOST:PORT,…`` of every member, as a database URL lists them."""
        return ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    def url(self, prefix: str | None = None) -> str:
        """A database URL under ``prefix`` (a fresh one when not given)."""
        return f"etcd://{self.endpoints}/{prefix or 'test-' + uuid.uuid4().hex[:10]}"

    def start(self) -> None:
        for member in self.members:
            self._spawn(member)
        self.wait_healthy()

    def stop(self) -> None:
        for member in self.members:
            self.kill(member)

    def kill(self, member: Member) -> None:
        """SIGKILL: the member dies where it stands (its data stays for a restart)."""
        process, member.process = member.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
        process.wait(timeout=10)

    def restart(self, member: Member) -> None:
        self.kill(member)
        self._spawn(member)
        self.wait_healthy([member])

    def freeze(self, member: Member) -> None:
        if member.process is not None:
            os.kill(member.process.pid, signal.SIGSTOP)

    def thaw(self, member: Member) -> None:
        if member.process is not None:
            os.kill(member.process.pid, signal.SIGCONT)

    def leader(self) -> Member:
        """The member Raft elected (asks each running member's status)."""
        for member in self.members:
            if not member.running:
                continue
            try:
                status = httpx.post(
                    f"{member.client_url}/v3/maintenance/status", json={}, timeout=2
                )
            except httpx.HTTPError:
                continue
            answer = status.json()
            if answer.get("leader") == answer.get("header", {}).get("member_id"):
                return member
        raise LookupError("no running etcd member leads")

    def wait_healthy(self, members: list[Member] | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        for member in members or self.members:
            while not self._healthy(member):
                if not member.running:
                    raise RuntimeError(f"etcd {member.name} exited: {self._tail(member)}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"etcd {member.name} not healthy: {self._tail(member)}")
                time.sleep(0.05)

    def _healthy(self, member: Member) -> bool:
        try:
            answer = httpx.get(f"{member.client_url}/health", timeout=1)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json().get("health") == "true"

    def _spawn(self, member: Member) -> None:
        cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        command = [
            ETCD,
            f"--name={member.name}",
            f"--data-dir={member.data_dir}",
            f"--listen-client-urls={member.client_url}",
            f"--advertise-client-urls={member.client_url}",
            f"--listen-peer-urls={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
            f"--initial-cluster={cluster}",
            f"--initial-cluster-token={self.token}",
            "--initial-cluster-state=new",
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--log-level=warn",
            "--logger=zap",
        ]
        log = member.log_path.open("ab")
        member.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()

    def _tail(self, member: Member) -> str:
        try:
            return member.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


def data_root(fallback: Path) -> Path:
    """A fresh directory for the members' data, on tmpfs when the machine has one."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        root = shm / f"engine-etcd-{uuid.uuid4().hex[:8]}"
        root.mkdir()
        return root
    return fallback


@contextlib.contextmanager
def running_cluster(fallback_root: Path) -> Iterator[EtcdCluster]:
    """A started cluster, stopped and its data removed on exit."""
    root = data_root(fallback_root)
    cluster = EtcdCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if root != fallback_root:
            shutil.rmtree(root, ignore_errors=True)
