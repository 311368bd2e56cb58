"""``python -m app demo``: a master, an edge and simulated devices on loopback.

One command shows high availability at work. The demo starts a master and an edge as
``python -m app serve`` processes, each with its own embedded store, serves simulated
devices from its own event loop, seeds an edge location whose room runs on the edge
plus a room on the master, and prints copy-paste commands. It then follows who
controls the edge's devices while the edge is killed, started again (``kill -USR1``
to the demo) and restored, until SIGINT or SIGTERM stops every process it started.
The demo outlives its master too: killed, the edge goes on running the room on its
own (the demo says so), and ``kill -USR1`` starts the master again.

The simulators (:mod:`app.sim`) and the bundled drivers ship with the package, so
the demo runs from an installed package as from a checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.node_process import HOST, READY_TIMEOUT_S, NodeProcess, NodeProcessError, free_port
from app.preflight import Unfit, check_directory, check_listen
from app.sim.line_device import LineDevice
from app.sim.modbus_device import ModbusDevice

#: How often the demo asks the master who controls the edge's devices.
WATCH_INTERVAL_S = 0.5

#: The drivers the demo registers, by the key the modules below refer to.
DRIVERS: Mapping[str, dict[str, Any]] = {
    "display": {
        "name": "Display (line protocol)",
        "file": "generic/tcp_line.py",
        "class_name": "TcpLine",
        "role": "device",
    },
    "lighting": {
        "name": "Lighting controller (Modbus TCP)",
        "file": "modbus/modbus_tcp.py",
        "class_name": "ModbusTcp",
        "role": "device",
    },
    "all_off": {
        "name": "Switch every display off",
        "file": "logic/all_off.py",
        "class_name": "AllOff",
        "role": "logic",
    },
}

#: The Modbus device's coil 0 is the lights, its holding register 0 their level.
LIGHTING_POLL = [
    {"kind": "coil", "address": 0, "count": 1, "name": "lights"},
    {"kind": "register", "address": 0, "count": 1, "name": "level"},
]

#: ``AllOff`` sends every display of its room this line.
ALL_OFF_SETTINGS = {"method": "send", "args": ["POWER OFF"], "watch": "connected"}


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


@dataclass(frozen=True, slots=True)
class DemoConfig:
    data_dir: Path
    master_port: int
    edge_port: int
    token: str
    failover_timeout: float

    @property
    def master_url(self) -> str:
        return f"http://{HOST}:{self.master_port}"

    @property
    def edge_url(self) -> str:
        return f"http://{HOST}:{self.edge_port}"

    @property
    def demo_pid_file(self) -> Path:
        return self.data_dir / "demo.pid"

    @property
    def edge_pid_file(self) -> Path:
        return self.data_dir / "edge.pid"

    @property
    def master_pid_file(self) -> Path:
        return self.data_dir / "master.pid"


@dataclass(frozen=True, slots=True)
class DevicePorts:
    """Where each simulated device listens."""

    edge_displays: tuple[int, int]
    master_display: int
    lighting: int


@dataclass(frozen=True, slots=True)
class Seeded:
    """The ids the seeding created, for the instructions and the edge's environment."""

    edge_id: str
    edge_secret: str
    edge_system_id: str
    master_system_id: str


# --- seeding ------------------------------------------------------------------------


def edge_location(edge_url: str, failover_timeout: float) -> dict[str, Any]:
    """The EdgeControl document: failover on, a nightly restore window, its public URL."""
    return {
        "name": "Sydney office",
        "description": "a remote location that keeps working when the WAN is down",
        "failover": True,
        "timeout": failover_timeout,
        "window_start": "0 3 * * *",
        "window_length": 3600,
        "timezone": "UTC",
        "api_url": edge_url,
    }


class Seeder:
    """Creates the demo's drivers, edge location, systems and modules through the API."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def seed(self, edge_url: str, failover_timeout: float, ports: DevicePorts) -> Seeded:
        drivers = {
            key: (await self._create("drivers", body))["id"] for key, body in DRIVERS.items()
        }
        edge = await self._create("edges", edge_location(edge_url, failover_timeout))
        room = await self._create("systems", {"name": "Boardroom", "edge_control_id": edge["id"]})
        lobby = await self._create("systems", {"name": "Head office lobby"})
        for port in ports.edge_displays:
            await self._module(room["id"], drivers["display"], "Display", port=port)
        await self._module(
            room["id"],
            drivers["lighting"],
            "Lighting",
            port=ports.lighting,
            settings={"poll": LIGHTING_POLL},
        )
        await self._module(room["id"], drivers["all_off"], "AllOff", settings=ALL_OFF_SETTINGS)
        await self._module(lobby["id"], drivers["display"], "Display", port=ports.master_display)
        return Seeded(edge["id"], edge["secret"], room["id"], lobby["id"])

    async def _module(
        self,
        system_id: str,
        driver_id: str,
        name: str,
        *,
        port: int | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        body: dict[str, Any] = {"driver_id": driver_id, "name": name, "system_id": system_id}
        if port is not None:
            body.update(ip=HOST, port=port)
        if settings:
            body["settings"] = dict(settings)
        await self._create("modules", body)

    async def _create(self, collection: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = await self._http.post(f"/api/{collection}", json=body)
        if response.status_code != 201:
            raise DemoError(
                f"creating {collection} failed ({response.status_code}): {response.text}"
            )
        created: dict[str, Any] = response.json()
        return created


# --- what the demo prints -----------------------------------------------------------


def ctl_command() -> str:
    """How to run ``ctl`` with this interpreter: its ``engine`` script, else ``-m app``."""
    engine = Path(sys.executable).parent / "engine"
    if engine.exists():
        return shlex.quote(str(engine))
    return f"{shlex.quote(sys.executable)} -m app"


def instructions(config: DemoConfig, seeded: Seeded, *, master_pid: int, edge_pid: int) -> str:
    """The banner: where everything is, and commands to paste into another shell."""
    exports = {
        "T": config.token,
        "API": f"{config.master_url}/api",
        "EDGE": seeded.edge_id,
        "ROOM": seeded.edge_system_id,
        "LOBBY": seeded.master_system_id,
        "EDGE_URL": config.edge_url,
        "DEMO": str(config.data_dir.resolve()),
        # For `engine ctl`: the server and the token it operates with.
        "ENGINE_URL": config.master_url,
        "ENGINE_TOKEN": config.token,
    }
    export_line = "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items())
    call = '{"module":"Display","index":1,"method":"send","args":["POWER ON"]}'
    timeout = f"{config.failover_timeout:g}"
    ctl = ctl_command()
    return f"""
Engine HA demo: a master, an edge and four simulated devices on loopback
  status page  {config.master_url}/  (sign in with the admin token; API docs at /docs)
  master  {config.master_url}  (pid {master_pid})
  edge    {config.edge_url}  (pid {edge_pid}, edge id {seeded.edge_id})
  admin token  {config.token}
  data and logs  {config.data_dir.resolve()}
  the room {seeded.edge_system_id} (Display_1, Display_2, Lighting_1, AllOff_1) runs on the edge;
  the lobby {seeded.master_system_id} (Display_1) runs on the master.

Paste into another shell (bash or zsh); the README's walkthrough goes on from here:

{export_line}
H=(-H "Authorization: Bearer $T" -H 'Content-Type: application/json')

# Who controls each location
{ctl} ctl status
# Call a display of the edge's room at the master: a 307 sends curl on to the edge
curl -s --location-trusted "${{H[@]}}" $API/systems/$ROOM/exec -d '{call}'
# Kill the edge: the master waits {timeout} s for it, then takes its devices over
kill -9 $(cat $DEMO/edge.pid)
# Start the edge again: it boots and reconnects in a few seconds; the master keeps control
kill -USR1 $(cat $DEMO/demo.pid)
# Hand control back to the edge once it is online again
{ctl} ctl restore $EDGE
# Kill the master: the edge runs the room on its own; ask the edge directly
kill -9 $(cat $DEMO/master.pid)
curl -s "${{H[@]}}" $EDGE_URL/api/systems/$ROOM/exec -d '{call}'
{ctl} ctl --url $EDGE_URL status
# Start the master again (kill -USR1 starts whatever was stopped)
kill -USR1 $(cat $DEMO/demo.pid)

Control changes of edge {seeded.edge_id} are shown below. Ctrl-C stops everything.
"""


def control_line(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> str | None:
    """One line when who controls the edge, or whether it is online, changed; else None."""
    keys = ("controller", "online", "epoch")
    if previous is not None and all(previous.get(k) == current.get(k) for k in keys):
        return None
    online = "online" if current.get("online") else "offline"
    line = f"control: {current.get('controller')} (epoch {current.get('epoch')}), edge {online}"
    if current.get("failover_active"):
        line += ", failover active"
    reason = current.get("reason")
    return f"{line}: {reason}" if reason else line


def link_line(link: Mapping[str, Any]) -> str:
    """What the demo says when the edge's link to the master goes down or comes back."""
    if link.get("connected"):
        return "edge: linked to the master again"
    error = link.get("error")
    why = f" ({error})" if error else ""
    return f"edge: its link to the master is down{why}; it runs the room on its own"


def exit_description(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


# --- devices ------------------------------------------------------------------------


class Devices:
    """The simulated devices, served from the demo's own event loop."""

    def __init__(self) -> None:
        self._displays = [LineDevice(HOST, 0, name=f"display-{n}") for n in (1, 2, 3)]
        self._lighting = ModbusDevice(HOST, 0)

    async def start(self) -> DevicePorts:
        for display in self._displays:
            await display.start()
        await self._lighting.start()
        first, second, third = (display.port for display in self._displays)
        return DevicePorts((first, second), third, self._lighting.port)

    async def stop(self) -> None:
        for display in self._displays:
            await display.stop()
        await self._lighting.stop()


# --- the demo -------------------------------------------------------------------------


class Demo:
    """Runs everything until a stop signal, then stops what it started, edge first.

    The edge and the master may each die meanwhile (killed by the newcomer following
    the walkthrough); the demo says so and starts again whatever is stopped on SIGUSR1.
    """

    def __init__(self, config: DemoConfig) -> None:
        self.config = config
        self.devices = Devices()
        self.master = NodeProcess(
            "master",
            config.data_dir / "master",
            config.master_port,
            {"ENGINE_ADMIN_TOKEN": config.token},
        )
        self.edge: NodeProcess | None = None
        self._stop = asyncio.Event()
        self._restart = asyncio.Event()
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {config.token}"}, timeout=10.0
        )

    async def run(self) -> int:
        self._install_signal_handlers()
        try:
            seeded = await self._start()
            return await self._supervise(seeded)
        except (DemoError, NodeProcessError) as exc:
            say(f"error: {exc}")
            return 1
        finally:
            await self._shutdown()

    async def _start(self) -> Seeded:
        config = self.config
        claim_data_dir(config)
        ports = await self.devices.start()
        await self._start_master()
        api = httpx.AsyncClient(base_url=self.master.url, headers=self._http.headers, timeout=10.0)
        async with api:
            seeded = await Seeder(api).seed(config.edge_url, config.failover_timeout, ports)
        edge = await self._start_edge(seeded)
        await self._wait_for_edge_control(seeded.edge_id)
        print(
            instructions(config, seeded, master_pid=self.master.pid, edge_pid=edge.pid), flush=True
        )
        return seeded

    async def _start_master(self) -> None:
        await self.master.start()
        self.config.master_pid_file.write_text(f"{self.master.pid}\n")
        await self.master.wait_ready(self._http)

    async def _start_edge(self, seeded: Seeded) -> NodeProcess:
        edge = NodeProcess(
            "edge",
            self.config.data_dir / "edge",
            self.config.edge_port,
            {
                "ENGINE_EDGE_ID": seeded.edge_id,
                "ENGINE_EDGE_SECRET": seeded.edge_secret,
                "ENGINE_MASTER_URL": self.master.url,
            },
        )
        await edge.start()
        self.edge = edge
        self.config.edge_pid_file.write_text(f"{edge.pid}\n")
        await edge.wait_ready(self._http)
        return edge

    async def _wait_for_edge_control(self, edge_id: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            control = await self._control(edge_id)
            if control and control.get("controller") == "edge" and control.get("online"):
                return
            await asyncio.sleep(0.1)
        raise DemoError("the edge did not take control of its devices")

    async def _control(self, edge_id: str) -> dict[str, Any] | None:
        try:
            response = await self._http.get(f"{self.master.url}/api/edges/{edge_id}/control")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        control: dict[str, Any] = response.json()
        return control

    async def _supervise(self, seeded: Seeded) -> int:
        """Follow control changes and the processes until asked to stop."""
        watcher = asyncio.create_task(self._watch_control(seeded.edge_id))
        link_watcher = asyncio.create_task(self._watch_edge_link())
        try:
            while True:
                stop = asyncio.create_task(self._stop.wait())
                restart = asyncio.create_task(self._restart.wait())
                exits = {
                    name: asyncio.create_task(process.wait())
                    for name, process in (("master", self.master), ("edge", self.edge))
                    if process is not None and process.running
                }
                await asyncio.wait(
                    {stop, restart, *exits.values()}, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in (stop, restart, *exits.values()):
                    waiter.cancel()
                if self._stop.is_set():
                    return 0
                for name, exited in exits.items():
                    if exited.done() and not exited.cancelled():
                        self._exited(name, exited.result())
                if self._restart.is_set():
                    self._restart.clear()
                    await self._start_stopped(seeded)
        finally:
            watcher.cancel()
            link_watcher.cancel()

    def _exited(self, name: str, returncode: int) -> None:
        if name == "edge":
            if self.edge is not None:
                remove_pid_file(self.config.edge_pid_file, self.edge.pid)
            say(
                f"the edge stopped ({exit_description(returncode)}); "
                f"`kill -USR1 {os.getpid()}` starts it again"
            )
            return
        remove_pid_file(self.config.master_pid_file, self.master.pid)
        edge = self.edge is not None and self.edge.running
        say(
            f"the master stopped ({exit_description(returncode)}); "
            + (
                f"the edge goes on running the room on its own at {self.config.edge_url}; "
                if edge
                else ""
            )
            + f"`kill -USR1 {os.getpid()}` starts the master again"
        )

    async def _start_stopped(self, seeded: Seeded) -> None:
        """Start again whatever is stopped: the master first, then the edge."""
        edge_running = self.edge is not None and self.edge.running
        if self.master.running and edge_running:
            say("the master and the edge are running already")
            return
        if not self.master.running:
            say("starting the master again")
            await self._start_master()
            say(f"the master is up again (pid {self.master.pid})")
        if not edge_running:
            say("starting the edge again")
            edge = await self._start_edge(seeded)
            say(f"the edge is up again (pid {edge.pid})")

    async def _watch_control(self, edge_id: str) -> None:
        previous: dict[str, Any] | None = None
        while True:
            control = await self._control(edge_id)
            if control is not None:
                line = control_line(previous, control)
                if line is not None:
                    say(line)
                previous = control
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def _watch_edge_link(self) -> None:
        """Say when the edge loses its link to the master, and when it has it back."""
        previous: bool | None = None
        while True:
            link = await self._edge_link()
            if link is not None and link.get("connected") != previous:
                if previous is not None or not link.get("connected"):
                    say(link_line(link))
                previous = bool(link.get("connected"))
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def _edge_link(self) -> dict[str, Any] | None:
        if self.edge is None or not self.edge.running:
            return None
        try:
            response = await self._http.get(f"{self.edge.url}/api/ready")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        link: dict[str, Any] = response.json().get("link") or {}
        return link

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self._restart.set)

    async def _shutdown(self) -> None:
        say("stopping the edge, the master and the devices")
        if self.edge is not None:
            await self.edge.stop()
        await self.master.stop()
        await self.devices.stop()
        await self._http.aclose()
        if self.edge is not None:
            remove_pid_file(self.config.edge_pid_file, self.edge.pid)
        with contextlib.suppress(RuntimeError):  # never started: no pid file
            remove_pid_file(self.config.master_pid_file, self.master.pid)
        # A demo refused because another one uses the directory leaves its files alone.
        remove_pid_file(self.config.demo_pid_file, os.getpid())
        say("demo stopped")


def claim_data_dir(config: DemoConfig) -> None:
    """Start from fresh stores, unless another demo is using the directory."""
    other = running_pid(config.demo_pid_file)
    if other is not None and other != os.getpid():
        raise DemoError(f"a demo (pid {other}) is already using {config.data_dir}")
    for leftover in (config.data_dir / "master", config.data_dir / "edge"):
        shutil.rmtree(leftover, ignore_errors=True)
    # Left by a demo that was killed: their pids may belong to other processes by now.
    config.edge_pid_file.unlink(missing_ok=True)
    config.master_pid_file.unlink(missing_ok=True)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.demo_pid_file.write_text(f"{os.getpid()}\n")


def remove_pid_file(pid_file: Path, pid: int) -> None:
    """Remove ``pid_file`` if it still names ``pid`` (and not a process started since)."""
    try:
        if int(pid_file.read_text().strip()) == pid:
            pid_file.unlink()
    except (OSError, ValueError):
        pass


def running_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is alive."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


# --- command line -------------------------------------------------------------------


def config_from(args: argparse.Namespace) -> DemoConfig:
    """The demo's configuration; raises DemoError naming a bad option, a busy port or a
    data directory it cannot create, before anything starts."""
    if args.failover_timeout <= 0:
        raise DemoError("--failover-timeout must be above 0")
    try:
        check_directory(args.data_dir, what="--data-dir")
        for port, option in ((args.master_port, "--master-port"), (args.edge_port, "--edge-port")):
            check_listen(HOST, port, how=f"choose another with {option} (0: any free port)")
    except Unfit as exc:
        raise DemoError(str(exc)) from None
    return DemoConfig(
        data_dir=args.data_dir,
        master_port=args.master_port or free_port(),
        edge_port=args.edge_port or free_port(),
        token=args.token or os.environ.get("ENGINE_ADMIN_TOKEN") or secrets.token_urlsafe(18),
        failover_timeout=args.failover_timeout,
    )


def run_cli(args: argparse.Namespace) -> int:
    try:
        config = config_from(args)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # The demo polls the master, and the device simulators log every connection.
    for noisy in ("httpx", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return asyncio.run(Demo(config).run())
