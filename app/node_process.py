"""Engine servers as child processes: ``python -m app serve`` on loopback.

What the demo starts, and the integration tests and benchmarks with it. Each server
has a working directory of its own holding its embedded store, its driver checkout
and its log file, and takes its settings from the ``ENGINE_*`` variables given here
only, never from the parent's environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

HOST = "127.0.0.1"
#: The folder holding the ``app`` package (a checkout, or site-packages): servers run
#: from it, so they import the very code that started them.
ROOT = Path(__file__).resolve().parent.parent
#: How long a server may take to answer ``/api/ready``.
READY_TIMEOUT_S = 60.0
#: How long a server may take to exit after SIGTERM before it is killed.
STOP_GRACE_S = 10.0


class NodeProcessError(Exception):
    """A server exited, or was not ready in time; the message ends with its log."""


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (the OS's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def node_environment(base: Mapping[str, str], node: Mapping[str, str]) -> dict[str, str]:
    """``base`` without any ``ENGINE_*`` variable, then the node's own settings."""
    env = {k: v for k, v in base.items() if not k.startswith("ENGINE_")}
    env.update(node)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the parent dies without stopping us."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class NodeProcess:
    """One ``python -m app serve`` child, logging to a file in its own directory.

    It runs in a session of its own, so a Ctrl-C in the terminal reaches only its
    parent, which then stops the servers in order; on Linux it is also stopped when
    its parent dies.
    """

    def __init__(
        self,
        name: str,
        workdir: Path,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        *,
        tls: bool = False,
        args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.workdir = workdir.resolve()
        self.port = port or free_port()
        self.scheme = "https" if tls else "http"
        self.log_path = self.workdir / f"{name}.log"
        #: ``ENGINE_*`` settings, read at each start.
        self.settings = {
            "ENGINE_DATABASE_URL": f"sqlite:///{self.workdir / 'engine.db'}",
            "ENGINE_DRIVERS_PATH": str(self.workdir / "drivers"),
            "ENGINE_PUBLIC_URL": self.url,
            **(settings or {}),
        }
        #: Extra ``serve`` options (``--access-log``).
        self.args = tuple(args)
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"the {self.name} has not been started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "app", "serve", "--port", str(self.port), *self.args]

    async def start(self) -> NodeProcess:
        """Start the server (again, after a stop or a kill); returns ``self``."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.command(),
                cwd=ROOT,
                env=node_environment(os.environ, self.settings),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        return self

    async def wait(self) -> int:
        """Its exit status, once it has exited."""
        if self._process is None:
            raise RuntimeError(f"the {self.name} has not been started")
        return await self._process.wait()

    async def wait_ready(
        self,
        http: httpx.AsyncClient | None = None,
        *,
        timeout: float = READY_TIMEOUT_S,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """Return once ``/api/ready`` answers 200 (asked with ``http``, or a client of
        its own that verifies TLS with ``verify``).

        Raises :class:`NodeProcessError` when the process exits first or is not ready
        within ``timeout`` seconds.
        """
        async with contextlib.AsyncExitStack() as stack:
            if http is None:
                http = await stack.enter_async_context(
                    httpx.AsyncClient(timeout=2.0, verify=verify)
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self.check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/api/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise NodeProcessError(
            f"the {self.name} was not ready within {timeout:g} s; its log ends:\n{self.log_tail()}"
        )

    def check_alive(self) -> None:
        """Raise :class:`NodeProcessError` if the server was started and has exited."""
        if self._process is not None and self._process.returncode is not None:
            raise NodeProcessError(
                f"the {self.name} exited with {self._process.returncode}; "
                f"its log ends:\n{self.log_tail()}"
            )

    def log(self) -> str:
        """Everything it logged so far, across restarts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    async def stop(self) -> None:
        """SIGTERM, and SIGKILL if it has not exited within the grace period."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
        except TimeoutError:
            await self.kill()

    async def kill(self) -> None:
        """SIGKILL: the server gets no chance to say goodbye."""
        process = self._process
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
