"""The client websocket over a real uvicorn server: bindings, calls, debug and errors."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.errors import Unavailable
from app.main import create_app
from app.node import Node
from app.routers import client_ws
from app.runtime.handle import ModuleHandle
from app.runtime.status import DebugCallback, StatusCallback, Unsubscribe
from app.services.resolve import RuntimeTargets
from app.settings import Settings
from app.sim.line_device import LineDevice
from tests.conftest import ADMIN_TOKEN
from tests.support.wait import wait_until
from tests.unit.routers.test_crud import create
from tests.unit.routers.test_module_ops import add_driver, add_module, wait_running

WAIT = 5.0
Message = dict[str, Any]


@dataclass(frozen=True)
class Server:
    http: httpx.AsyncClient
    ws_url: str
    node: Node


@pytest.fixture
async def server(settings: Settings, node: Node) -> AsyncIterator[Server]:
    """The whole app served by uvicorn on loopback, lifespan and background tasks included."""
    app = create_app(settings, node=node)
    uvicorn_server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    )
    serving = asyncio.create_task(uvicorn_server.serve())
    await wait_until(lambda: uvicorn_server.started, timeout=WAIT, message="uvicorn to start")
    await wait_until(lambda: node.boot.ready, timeout=WAIT, message="the master to boot")
    port = uvicorn_server.servers[0].sockets[0].getsockname()[1]
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=WAIT,
    ) as http:
        yield Server(http, f"ws://127.0.0.1:{port}/api/ws", node)
    uvicorn_server.should_exit = True
    await asyncio.wait_for(serving, WAIT)


class Client:
    """A websocket client that reads with a deadline and can wait for one message."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket

    async def send(self, message: Message | str) -> None:
        await self.websocket.send(message if isinstance(message, str) else json.dumps(message))

    async def receive(self) -> Message:
        async with asyncio.timeout(WAIT):
            return dict(json.loads(await self.websocket.recv()))

    async def until(self, matches: Callable[[Message], bool]) -> Message:
        """The first message that ``matches``, skipping the others."""
        while not matches(message := await self.receive()):
            pass
        return message

    async def request(self, message: Message) -> Message:
        await self.send(message)
        return await self.until(lambda reply: reply.get("id") == message["id"])


@asynccontextmanager
async def client(server: Server) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with connect(server.ws_url, additional_headers=headers) as websocket:
        yield Client(websocket)


@dataclass(frozen=True)
class Room:
    system_id: str
    device_module: str
    echo_module: str


@pytest.fixture
async def device() -> AsyncIterator[LineDevice]:
    line_device = LineDevice()
    await line_device.start()
    yield line_device
    await line_device.stop()


@pytest.fixture
async def room(server: Server, device: LineDevice) -> Room:
    """A system with a TcpLine ``Device`` connected to ``device`` and an ``Echo``."""
    http = server.http
    tcp_line = await add_driver(http, "generic/tcp_line.py", "TcpLine", "device")
    echo = await add_driver(http, "generic/echo.py", "Echo", "service")
    system = await create(http, "/api/systems", {"name": "Lobby"})
    device_module = await add_module(
        http,
        tcp_line,
        "Device",
        ip="127.0.0.1",
        port=device.port,
        settings={"reconnect_delay": 0.05, "reconnect_max": 0.2},
        system_id=system["id"],
    )
    echo_module = await add_module(http, echo, "Echo", system_id=system["id"])
    await wait_running(server.node, echo_module)
    await wait_until(
        lambda: server.node.modules.manager.state(device_module).get("connected") is True,
        timeout=WAIT,
        message="the device to connect",
    )
    return Room(str(system["id"]), device_module, echo_module)


def meta(room: Room, mod: str, name: str) -> Message:
    return {"sys": room.system_id, "mod": mod, "index": 1, "name": name}


def is_notify(name: str, value: Any) -> Callable[[Message], bool]:
    return lambda m: m.get("type") == "notify" and m["meta"]["name"] == name and m["value"] == value


class Subscriptions:
    """Counts the subscriptions client sessions hold on module handles, to catch leaks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.live = 0
        module, system_module = RuntimeTargets.module, RuntimeTargets.system_module

        async def counted_module(targets: RuntimeTargets, module_id: str) -> ModuleHandle:
            return _Counted(await module(targets, module_id), self)

        async def counted_system_module(
            targets: RuntimeTargets, system_id: str, name: str, index: int = 1
        ) -> ModuleHandle:
            return _Counted(await system_module(targets, system_id, name, index), self)

        monkeypatch.setattr(RuntimeTargets, "module", counted_module)
        monkeypatch.setattr(RuntimeTargets, "system_module", counted_system_module)

    def counting(self, unsubscribe: Unsubscribe) -> Unsubscribe:
        self.live += 1

        def counted_unsubscribe() -> None:
            self.live -= 1
            unsubscribe()

        return counted_unsubscribe


class _Counted:
    """A module handle whose subscriptions are counted."""

    def __init__(self, handle: ModuleHandle, subscriptions: Subscriptions) -> None:
        self._handle = handle
        self._subscriptions = subscriptions
        self.id, self.name = handle.id, handle.name
        self.exec, self.state, self.funcs = handle.exec, handle.state, handle.funcs

    def subscribe_status(self, callback: StatusCallback) -> Unsubscribe:
        return self._subscriptions.counting(self._handle.subscribe_status(callback))

    def subscribe_debug(self, callback: DebugCallback) -> Unsubscribe:
        return self._subscriptions.counting(self._handle.subscribe_debug(callback))


@pytest.fixture
def subscriptions(monkeypatch: pytest.MonkeyPatch) -> Subscriptions:
    return Subscriptions(monkeypatch)


async def test_bind_follows_the_device_connection(
    server: Server, room: Room, device: LineDevice
) -> None:
    async with client(server) as panel:
        await panel.send({"id": 1, "cmd": "bind", **meta(room, "Device", "connected")})
        assert await panel.receive() == {
            "id": 1,
            "type": "success",
            "meta": meta(room, "Device", "connected"),
        }
        assert await panel.receive() == {
            "type": "notify",
            "value": True,
            "meta": meta(room, "Device", "connected"),
        }
        await device.stop()
        assert (await panel.receive())["value"] is False
        await device.start()
        assert (await panel.receive())["value"] is True


async def test_exec_replies_with_the_value_or_an_error(server: Server, room: Room) -> None:
    async with client(server) as panel:
        send = {"cmd": "exec", "sys": room.system_id, "mod": "Device", "index": 1, "name": "send"}
        assert await panel.request({"id": 2, **send, "args": ["hi"]}) == {
            "id": 2,
            "type": "success",
            "value": "hi",
            "meta": meta(room, "Device", "send"),
        }
        echo = {"cmd": "exec", "sys": room.system_id, "mod": "Echo"}
        # PlaceOS's error codes: 1 bad request, 3 request failed, 5/6 system/module not found.
        failures: list[tuple[int, Message, int, str]] = [
            (3, {"name": "warp"}, 3, "'warp'"),
            (4, {"name": "echo", "args": [1, 2]}, 1, "argument"),
            (5, {"name": "fail", "args": ["no signal"]}, 3, "no signal"),
            (6, {"name": "echo", "mod": "Projector", "args": [1]}, 6, "Projector_1"),
            (7, {"name": "echo", "sys": "sys-nope", "args": [1]}, 5, "sys-nope"),
        ]
        for request_id, call, code, words in failures:
            reply = await panel.request({"id": request_id, **echo, **call})
            assert reply["type"] == "error" and reply["code"] == code, reply
            assert words in reply["msg"]
        keyword = await panel.request({"id": "k", **echo, "name": "echo", "kwargs": {"value": 9}})
        assert keyword["value"] == 9


async def test_a_slow_call_does_not_hold_up_others(server: Server, room: Room) -> None:
    echo = {"cmd": "exec", "sys": room.system_id, "mod": "Echo", "index": 1}
    async with client(server) as panel:
        await panel.send({"id": 1, **echo, "name": "sleep", "args": [0.3]})
        await panel.send({"id": 2, **echo, "name": "echo", "args": ["quick"]})
        assert (await panel.receive())["value"] == "quick"
        assert (await panel.receive())["value"] == 0.3


async def test_debug_streams_log_lines_until_ignored(server: Server, room: Room) -> None:
    http = server.http
    async with client(server) as panel:
        watch = {"id": 3, "cmd": "debug", **meta(room, "Echo", "")}
        position = {"sys": room.system_id, "mod": "Echo", "index": 1}
        assert await panel.request(watch) == {"id": 3, "type": "success", "meta": position}
        assert (await http.post(f"/api/modules/{room.echo_module}/stop")).status_code == 200
        line = await panel.receive()
        assert line == {
            "type": "debug",
            "mod": room.echo_module,
            "klass": "Echo",
            "level": "info",
            "msg": line["msg"],
            "meta": position,
        }
        assert "stopped" in line["msg"]
        await http.post(f"/api/modules/{room.echo_module}/start")
        assert "started" in (await panel.receive())["msg"]

        # A failing call logs its error with a traceback: the client hears the error only.
        fail = {"cmd": "exec", "sys": room.system_id, "mod": "Echo", "name": "fail"}
        await panel.send({"id": 4, **fail, "args": ["boom"]})
        logged = await panel.until(lambda m: m.get("type") == "debug")
        assert logged["level"] == "error" and "boom" in logged["msg"]
        assert "File " not in logged["msg"] and "Traceback" not in logged["msg"], logged
        await panel.until(lambda m: m.get("id") == 4)

        # ``ignore`` by the module's id in ``mod``, as PlaceOS also takes it.
        ignore = {"id": 5, "cmd": "ignore", "mod": room.echo_module, "index": 1, "name": ""}
        assert (await panel.request(ignore))["type"] == "success"
        # A failing call logs an error before its reply: no line may come first now.
        await panel.send({"id": 6, **fail, "args": ["boom"]})
        assert (await panel.receive())["id"] == 6


async def test_debug_by_module_id_names_its_place(server: Server, room: Room) -> None:
    async with client(server) as panel:
        for request_id, watch in enumerate(
            [
                {"sys": "", "mod": room.echo_module, "index": 1, "name": ""},
                {"sys": room.system_id, "mod": room.echo_module, "index": 1, "name": ""},
            ]
        ):
            reply = await panel.request({"id": request_id, "cmd": "debug", **watch})
            assert reply["type"] == "success", reply
        await server.http.post(f"/api/modules/{room.echo_module}/stop")
        line = await panel.until(lambda m: m.get("type") == "debug")
        assert line["meta"] == {"sys": room.system_id, "mod": "Echo", "index": 1}
        unknown = {"id": 9, "cmd": "debug", "mod": "mod-nope", "index": 1, "name": ""}
        assert (await panel.request(unknown))["code"] == 6


async def test_malformed_input_is_answered_and_bindings_keep_working(
    server: Server, room: Room
) -> None:
    set_power = {"cmd": "exec", "sys": room.system_id, "mod": "Echo", "name": "set"}
    async with client(server) as panel:
        await panel.request({"id": 1, "cmd": "bind", **meta(room, "Echo", "power")})
        assert (await panel.receive())["value"] is None  # not set yet

        for frame, request_id, code, words in [
            ("{not json", None, 0, "not valid JSON"),
            ("[1, 2]", None, 0, "JSON object"),
            (json.dumps({"id": 9, "cmd": "teleport"}), 9, 4, "unknown cmd 'teleport'"),
            (json.dumps({"id": 10, "cmd": "bind", "sys": room.system_id}), 10, 1, "mod"),
            (json.dumps({"id": 11, "cmd": "debug", "mod_id": "x", "extra": 1}), 11, 1, "extra"),
            (json.dumps({"id": 12, "cmd": "debug", "sys": room.system_id}), 12, 1, "mod"),
        ]:
            await panel.send(frame)
            reply = await panel.receive()
            assert reply["id"] == request_id and reply["type"] == "error", reply
            assert reply["code"] == code and words in reply["msg"], reply

        await panel.send("ping")
        assert await panel.websocket.recv() == "pong"
        await panel.send({"id": 12, **set_power, "args": ["power", True]})
        assert await panel.until(is_notify("power", True))


async def test_unbind_stops_notifications(server: Server, room: Room) -> None:
    set_ = {"cmd": "exec", "sys": room.system_id, "mod": "Echo", "name": "set"}
    async with client(server) as panel:
        binding = meta(room, "Echo", "volume")
        await panel.request({"id": 1, "cmd": "bind", **binding})
        await panel.receive()  # the current value
        await panel.send({"id": 2, **set_, "args": ["volume", 10]})
        assert is_notify("volume", 10)(await panel.receive())
        assert (await panel.receive())["id"] == 2

        assert await panel.request({"id": 3, "cmd": "unbind", **binding}) == {
            "id": 3,
            "type": "success",
            "meta": binding,
        }
        # The change would be queued before the reply: the reply comes first, alone.
        await panel.send({"id": 4, **set_, "args": ["volume", 20]})
        assert (await panel.receive())["id"] == 4


async def test_closing_drops_every_subscription(
    server: Server, room: Room, subscriptions: Subscriptions
) -> None:
    async with client(server) as panel:
        await panel.request({"id": 1, "cmd": "debug", "mod_id": room.echo_module})
        for request_id, name in enumerate(("power", "volume", "power"), start=2):
            await panel.request({"id": request_id, "cmd": "bind", **meta(room, "Echo", name)})
        assert subscriptions.live == 3  # binding twice to one variable subscribes once
    await wait_until(lambda: subscriptions.live == 0, timeout=WAIT, message="no subscriptions")


async def test_bad_tokens_are_refused_with_4401(server: Server, room: Room) -> None:
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        async with connect(server.ws_url, additional_headers=headers) as websocket:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(websocket.recv(), WAIT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        assert "bearer token" in closed.value.rcvd.reason
    async with connect(f"{server.ws_url}?token={ADMIN_TOKEN}") as websocket:
        panel = Client(websocket)
        reply = await panel.request({"id": 1, "cmd": "debug", "mod_id": room.echo_module})
        assert reply["type"] == "success"


async def test_a_client_that_stops_reading_is_closed_with_1008(
    server: Server, room: Room, subscriptions: Subscriptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_ws, "OUTBOX_LIMIT", 4)
    module = server.node.modules.manager.handle(room.echo_module)
    blob = secrets.token_urlsafe(192 * 1024)  # random: compression cannot shrink it
    async with client(server) as panel:
        await panel.request({"id": 1, "cmd": "bind", **meta(room, "Echo", "blob")})

        async def dropped() -> bool:
            # Values that alternate, so that every write is a change the client must hear.
            for suffix in "ab":
                await module.exec("set", ["blob", blob + suffix])
            return subscriptions.live == 0

        # The client reads nothing now: socket buffers fill, then the outbox.
        await wait_until(dropped, timeout=20, message="the slow client to be dropped")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(drain(panel.websocket), WAIT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def drain(websocket: ClientConnection) -> None:
    """Read everything until the connection closes (which raises)."""
    while True:
        await websocket.recv()


async def test_front_end_paths_and_credentials(server: Server, room: Room) -> None:
    """Where the PlaceOS and ACA libraries connect, with the token where they put it."""
    base = server.ws_url.removesuffix("/api/ws")
    watch = {"id": 1, "cmd": "bind", **meta(room, "Echo", "power")}
    for path, query, headers in [
        ("/api/engine/v2/systems/control", f"?bearer_token={ADMIN_TOKEN}", {}),
        ("/api/engine/v2/systems/control", f"?fixed_device=true&api-key={ADMIN_TOKEN}", {}),
        ("/control/websocket", "", {"Cookie": f"bearer_token={ADMIN_TOKEN}; theme=dark"}),
        ("/control/websocket", "?fixed_device=true", {"X-API-Key": ADMIN_TOKEN}),
    ]:
        async with connect(f"{base}{path}{query}", additional_headers=headers) as websocket:
            reply = await Client(websocket).request(watch)
            assert reply["type"] == "success", (path, query, headers, reply)
    async with connect(f"{base}/control/websocket?bearer_token=wrong") as websocket:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(websocket.recv(), WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_calls_past_the_limit_wait_and_are_all_answered(
    server: Server, room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_ws, "MAX_CALLS", 8)
    sleep = {"cmd": "exec", "sys": room.system_id, "mod": "Echo", "name": "sleep"}
    async with client(server) as panel:
        for request_id in range(200):
            await panel.send({"id": request_id, **sleep, "args": [0.01]})
        replies = [await panel.receive() for _ in range(200)]
    assert sorted(reply["id"] for reply in replies) == list(range(200))
    assert {reply["type"] for reply in replies} == {"success"}, replies


async def test_a_binding_waits_for_a_module_that_runs_nowhere_yet(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edge's module while nobody runs it (an edge during a failover): bound all the same,
    heard once control of its location comes here."""
    http = server.http
    echo = await add_driver(http, "generic/echo.py", "Echo", "service")
    edge = await create(http, "/api/edges", {"name": "Away", "failover": False})
    system = await create(http, "/api/systems", {"name": "Far", "edge_control_id": edge["id"]})
    module_id = await add_module(http, echo, "Echo", system_id=system["id"])

    async def applied() -> bool:
        topology = await server.node.modules.topology()
        return module_id in topology.systems[system["id"]].body.get("modules", [])

    # The takeover below finds the module only once the master has applied its creation.
    await wait_until(applied, timeout=10, message="the master to apply the new module")
    resolve = RuntimeTargets.system_module

    async def not_running_yet(targets: RuntimeTargets, *args: Any) -> ModuleHandle:
        if not server.node.modules.runs(edge["id"]):
            raise Unavailable(f"module {module_id} is not loaded")
        return await resolve(targets, *args)

    monkeypatch.setattr(RuntimeTargets, "system_module", not_running_yet)
    binding = {"sys": system["id"], "mod": "Echo", "index": 1, "name": "power"}
    async with client(server) as panel:
        reply = await panel.request({"id": 1, "cmd": "bind", **binding})
        assert reply == {"id": 1, "type": "success", "meta": binding}
        await panel.send("ping")
        assert await panel.websocket.recv() == "pong", "no value yet: the module runs nowhere"

        await server.node.modules.take(edge["id"])  # the master takes the location over
        await wait_running(server.node, module_id)
        assert await panel.until(lambda m: m.get("type") == "notify") == {
            "type": "notify",
            "value": None,
            "meta": binding,
        }
        await server.node.modules.manager.handle(module_id).exec("set", ["power", "on"])
        assert await panel.until(is_notify("power", "on"))


async def test_a_device_key_binds_and_calls_its_own_room_only(server: Server, room: Room) -> None:
    issued = await server.http.post(f"/api/systems/{room.system_id}/keys", json={})
    other = await create(server.http, "/api/systems", {"name": "Other"})
    key = issued.json()["key"]
    async with connect(f"{server.ws_url}?api-key={key}") as websocket:
        panel = Client(websocket)
        bound = await panel.request({"id": 1, "cmd": "bind", **meta(room, "Echo", "power")})
        assert bound["type"] == "success"
        called = await panel.request(
            {"id": 2, "cmd": "exec", **meta(room, "Echo", "echo"), "args": ["hi"]}
        )
        assert called["value"] == "hi"
        for request in (
            {"id": 3, "cmd": "bind", **meta(room, "Echo", "power"), "sys": other["id"]},
            {"id": 4, "cmd": "debug", "mod_id": room.echo_module},
            {"id": 5, "cmd": "debug", "mod": room.echo_module},
        ):
            refused = await panel.request(request)
            assert (refused["type"], refused["code"]) == ("error", 2), refused
            assert "only its own room" in refused["msg"]


async def test_a_revoked_token_closes_the_socket_at_its_next_frame(
    server: Server, room: Room
) -> None:
    issued = (await server.http.post(f"/api/systems/{room.system_id}/keys", json={})).json()
    async with connect(f"{server.ws_url}?api-key={issued['key']}") as websocket:
        panel = Client(websocket)
        await panel.request({"id": 1, "cmd": "bind", **meta(room, "Echo", "power")})
        revoked = await server.http.delete(f"/api/systems/{room.system_id}/keys/{issued['id']}")
        assert revoked.status_code == 204
        await panel.send("ping")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(drain(websocket), WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert "revoked" in closed.value.rcvd.reason
