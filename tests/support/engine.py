"""Real engine server processes on loopback for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: The admin token integration tests give the masters they start.
ADMIN_TOKEN = "integration-admin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EngineProcess:
    """``python -m app serve`` in a subprocess with its own store and log file."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        port: int | None = None,
        tls: bool = False,
        args: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.scheme = "https" if tls else "http"
        self.env = {
            "ENGINE_DATABASE_URL": f"sqlite:///{workdir / 'engine.db'}",
            "ENGINE_DRIVERS_PATH": str(workdir / "drivers"),
            "ENGINE_PUBLIC_URL": f"{self.scheme}://127.0.0.1:{self.port}",
            **(env or {}),
        }
        #: Extra ``serve`` options (``--access-log``).
        self.args = args
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> EngineProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(self.port), *self.args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    async def wait_ready(self, timeout: float = 30.0, **client: Any) -> None:
        async with httpx.AsyncClient(timeout=2.0, **client) as http:

            async def ready() -> bool:
                self.check_alive()
                try:
                    return (await http.get(f"{self.url}/api/ready")).status_code == 200
                except httpx.HTTPError:
                    return False

            try:
                await wait_until(ready, timeout=timeout, message=f"{self.name} to be ready")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; its log ends:\n{self.log()[-3000:]}") from None

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}"
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to say goodbye."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
