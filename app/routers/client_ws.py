"""The client websocket (bindings, calls and debug streams), where front ends look for it.

Served at ``/api/ws`` and where the PlaceOS / ACA Engine front-end libraries connect:
``/api/engine/v2/systems/control`` and ``/control/websocket``. Each takes the token
the way those libraries send it (see :func:`websocket_credentials`).

Module callbacks are synchronous and must never wait on a client, so every outgoing
message goes through a bounded outbox that one writer task drains. A client that
falls so far behind that the outbox fills is disconnected with 1008: dropping
notifications instead would leave its screens showing stale values without anyone
knowing, whereas a client that reconnects binds again and gets every current value.

A request that is not valid (bad JSON, unknown ``cmd``, missing field) is answered
with an error and changes nothing else. Calls run concurrently, each in its own task,
so a slow method does not hold up the bindings; past ``MAX_CALLS`` in flight the
reader stops reading until one finishes, so a client that sends too many at once is
slowed down, never refused. When the socket closes, every subscription the client
made is dropped.

Every frame the client sends checks its token again (a cached lookup), so a revoked
token or device key closes the socket (4401) at its next frame; a device key reaches
its own system only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketDisconnected

from app.errors import EngineError, Unauthorized, Unavailable, UnknownModule
from app.node import Node
from app.routers import client_protocol as protocol
from app.routers.client_protocol import (
    Bind,
    BindingKey,
    ClientRequest,
    Debug,
    ErrorCode,
    Exec,
    Ignore,
    Message,
    Unbind,
    WatchTarget,
)
from app.routers.deps import NodeDep
from app.runtime.status import DebugCallback, StatusCallback, Unsubscribe
from app.services.auth import Principal, require_room
from app.services.resolve import RuntimeTargets
from app.store.base import StoreUnavailable
from app.urls import CLIENT_PATH, websocket_url

log = logging.getLogger(__name__)

_Key = TypeVar("_Key")

#: Close codes: a bad or missing token (as on the control link), a client too slow.
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 1008

#: Messages waiting for a client before it counts as too slow.
OUTBOX_LIMIT = 1024
#: Calls one client may have in flight before its socket is no longer read.
MAX_CALLS = 64

#: Where front ends open the client websocket: ours, PlaceOS's and the ACA Engine's.
PATHS = (CLIENT_PATH, "/api/engine/v2/systems/control", "/control/websocket")

router = APIRouter()


def websocket_credentials(websocket: WebSocket) -> str | None:
    """The token or API key of a websocket handshake, wherever a front end put it.

    ``Authorization: Bearer``, ``X-API-Key``, the ``bearer_token`` / ``token`` /
    ``api-key`` query parameters, or a ``bearer_token`` cookie (what the PlaceOS
    library sets in a top-level page, where it cannot add headers). An API key is a
    user token like any other.
    """
    scheme, _, credentials = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    query = websocket.query_params
    return (
        websocket.headers.get("x-api-key")
        or query.get("bearer_token")
        or query.get("token")
        or query.get("api-key")
        or websocket.cookies.get("bearer_token")
        or None
    )


async def client_websocket(websocket: WebSocket, node: NodeDep) -> None:
    credentials = websocket_credentials(websocket)
    try:
        principal = await node.auth.authenticate(credentials)
    except Unauthorized as exc:
        # Accepted only to close: a refused handshake would hide the reason from browsers.
        await websocket.accept()
        await websocket.close(CLOSE_UNAUTHORIZED, exc.detail)
        return
    await websocket.accept()
    targets = RuntimeTargets(node.catalog, node.modules)
    await ClientSession(websocket, targets, node, SignedIn(principal, credentials)).serve()


for _path in PATHS:
    router.add_api_websocket_route(_path, client_websocket, name=f"clientWebsocket {_path}")


@dataclass(frozen=True, slots=True)
class Closing:
    """The writer's last item: close the socket with ``code`` once the frames before are sent."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who opened the socket, and the credentials checked again at every frame they send."""

    principal: Principal
    credentials: str | None


class Outbox:
    """Encoded messages waiting for the writer; filling up marks the client as too slow."""

    def __init__(self, limit: int) -> None:
        self._queue: asyncio.Queue[str | Closing] = asyncio.Queue(limit)
        self.overflowed = asyncio.Event()

    def put(self, frame: str | Closing) -> None:
        """Never blocks: module callbacks call this."""
        if self.overflowed.is_set():
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed.set()

    async def get(self) -> str | Closing:
        return await self._queue.get()


class ClientSession:
    """One client connection: its bindings, debug watches and calls in flight."""

    def __init__(
        self, websocket: WebSocket, targets: RuntimeTargets, node: Node, signed_in: SignedIn
    ) -> None:
        self._websocket = websocket
        self._targets = targets
        self._node = node
        self._signed_in = signed_in
        self._outbox = Outbox(OUTBOX_LIMIT)
        self._bindings: dict[BindingKey, Unsubscribe] = {}
        self._watches: dict[str, Unsubscribe] = {}
        self._calls: set[asyncio.Task[None]] = set()
        self._call_slots = asyncio.Semaphore(MAX_CALLS)

    async def serve(self) -> None:
        """Run until the client leaves or falls too far behind; then drop everything."""
        tasks = [
            asyncio.create_task(self._read(), name="client ws reader"),
            asyncio.create_task(self._write(), name="client ws writer"),
        ]
        overflowed = asyncio.create_task(self._outbox.overflowed.wait())
        stop_following = self._node.modules.on_location_moved(self._location_moved)
        try:
            done, _ = await asyncio.wait([*tasks, overflowed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_following()
            self._release()
            pending: list[asyncio.Task[Any]] = [*tasks, overflowed, *self._calls]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if overflowed in done:
            log.warning("client websocket closed: its outbox of %d messages filled", OUTBOX_LIMIT)
            await self._websocket.close(CLOSE_TOO_SLOW, "too slow: messages piled up")
        for task in tasks:
            if task in done:
                task.result()  # an unexpected failure propagates (and closes with 1011)

    def _send(self, message: Message) -> None:
        self._outbox.put(protocol.encode(message))

    async def _write(self) -> None:
        try:
            while True:
                frame = await self._outbox.get()
                if isinstance(frame, Closing):
                    await self._websocket.close(frame.code, frame.reason)
                    return
                await self._websocket.send_text(frame)
        except (WebSocketDisconnect, WebSocketDisconnected):
            return
        except RuntimeError as exc:
            # The server closed the socket itself (a keep-alive ping went unanswered)
            # before the disconnect reached the reader: uvicorn refuses the send.
            log.debug("client websocket closed by the server: %s", exc)
            return

    async def _read(self) -> None:
        while True:
            message = await self._websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
            await self._receive(text)

    async def _receive(self, text: str) -> None:
        if not await self._still_signed_in():
            return
        if text == protocol.PING:
            self._outbox.put(protocol.PONG)
            return
        try:
            request = protocol.parse_request(text)
        except protocol.BadRequest as exc:
            self._send(exc.reply())
            return
        if isinstance(request, Exec):
            await self._start_call(request)
        else:
            await self._respond(request)

    async def _still_signed_in(self) -> bool:
        """Whether the token or key that opened the socket is still valid; a revoked one
        closes the socket (4401) at the client's next frame, ``ping`` included."""
        try:
            await self._node.auth.authenticate(self._signed_in.credentials)
        except Unauthorized as exc:
            self._outbox.put(Closing(CLOSE_UNAUTHORIZED, exc.detail))
            return False
        except StoreUnavailable:
            pass  # valid when the socket opened; the store cannot say otherwise now
        return True

    async def _start_call(self, request: Exec) -> None:
        """Run the call in its own task; with every slot taken, wait (and read nothing)."""
        await self._call_slots.acquire()
        call = asyncio.create_task(self._respond(request), name=f"client ws exec {request.name}")
        self._calls.add(call)
        call.add_done_callback(self._call_done)

    def _call_done(self, call: asyncio.Task[None]) -> None:
        self._calls.discard(call)
        self._call_slots.release()

    async def _respond(self, request: ClientRequest) -> None:
        """Carry out the request and send its replies, or the error that stopped it."""
        try:
            replies = await self._perform(request)
        except EngineError as exc:
            replies = [protocol.error(request.id, protocol.code_for(exc), exc.detail)]
        except Exception:
            log.exception("client websocket request %r failed", request)
            replies = [
                protocol.error(
                    request.id, ErrorCode.UNEXPECTED_FAILURE, "unexpected error; see the server log"
                )
            ]
        for reply in replies:
            self._send(reply)

    async def _perform(self, request: ClientRequest) -> list[Message]:
        # A device key reaches only its own system (a module watched by id: none).
        room = request.key.sys if isinstance(request, Bind | Unbind | Exec) else request.target.sys
        require_room(self._signed_in.principal, room)
        match request:
            case Bind():
                return await self._bind(request)
            case Unbind():
                _drop(self._bindings, request.key)
                return [protocol.success(request.id, request.key.meta())]
            case Exec():
                return [await self._exec(request)]
            case Debug():
                await self._watch(request.target)
            case Ignore():
                _drop(self._watches, await self._module_id(request.target))
        return [protocol.success(request.id, request.target.meta())]

    async def _bind(self, request: Bind) -> list[Message]:
        """Subscribe (once per key); the current value follows the success at once.

        A module that exists but does not run where this server can reach it now (its
        location is changing hands) is bound all the same, as PlaceOS binds to a stopped
        module: its value follows once control of the location comes here.
        """
        key = request.key
        try:
            handle = await self._targets.system_module(key.sys, key.mod, key.index)
        except Unavailable as exc:
            log.info("binding %s waits for its module: %s", key, exc.detail)
            self._bindings.setdefault(key, _waiting)
            return [protocol.success(request.id, key.meta())]
        if self._bindings.get(key) is _waiting:
            del self._bindings[key]
        if key not in self._bindings:
            self._bindings[key] = handle.subscribe_status(self._status_listener(key))
        return [
            protocol.success(request.id, key.meta()),
            protocol.notify(key, handle.state().get(key.name)),
        ]

    def _status_listener(self, key: BindingKey) -> StatusCallback:
        def changed(name: str, value: object) -> None:
            if name == key.name:
                self._send(protocol.notify(key, value))

        return changed

    async def _exec(self, request: Exec) -> Message:
        key = request.key
        handle = await self._targets.system_module(key.sys, key.mod, key.index)
        value = await handle.exec(key.name, request.args, request.kwargs)
        return protocol.result(request.id, value, key.meta())

    async def _module_id(self, target: WatchTarget) -> str:
        """The id of the module ``target`` names: by system, name and index, else by id."""
        if target.sys is not None:
            try:
                return (await self._targets.system_module(target.sys, target.mod, target.index)).id
            except UnknownModule:
                # PlaceOS also takes the module's id in ``mod`` alongside a system.
                if not await self._exists(target.mod):
                    raise
        return target.mod

    async def _exists(self, module_id: str) -> bool:
        return module_id in (await self._node.modules.topology()).modules

    async def _watch(self, target: WatchTarget) -> None:
        module_id = await self._module_id(target)
        handle = await self._targets.module(module_id)
        if module_id not in self._watches:
            spec = (await self._node.modules.topology()).module_spec(module_id)
            klass = spec.class_name if spec else ""
            meta = target.meta() if target.mod != module_id else await self._position(module_id)
            listener = self._debug_listener(module_id, klass, meta)
            self._watches[module_id] = handle.subscribe_debug(listener)

    async def _position(self, module_id: str) -> dict[str, Any]:
        """Where a module watched by id sits (``{sys, mod, index}``), for its debug lines."""
        for system_id in (await self._node.modules.topology()).systems_of(module_id):
            try:
                positions = self._targets.systems.index(system_id).positions
            except EngineError:
                continue
            for (name, index), found in positions.items():
                if found == module_id:
                    return {"sys": system_id, "mod": name, "index": index}
        return {"sys": None, "mod": module_id, "index": 1}

    def _debug_listener(self, module_id: str, klass: str, meta: dict[str, Any]) -> DebugCallback:
        def logged(level: str, message: str) -> None:
            self._send(protocol.debug_line(module_id, klass, level, message, meta))

        return logged

    def _location_moved(self, location: str | None) -> None:
        task = asyncio.create_task(self._rehome(location), name="client ws rehome")
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _rehome(self, location: str | None) -> None:
        """Control of ``location`` moved: follow its modules, tell the client where to go.

        Each binding in that location is resolved again (a local module becomes an
        edge's proxy, or the reverse), the client hears the current value, and a
        ``redirect`` names the server that controls the system now.
        """
        topology = await self._node.modules.topology()
        moved = [k for k in self._bindings if topology.location_of_system(k.sys) == location]
        if not moved:
            return
        placement = await self._node.placement.placement(location)
        here = placement.controller == "here"
        url = self._node.settings.base_url if here else placement.url
        for key in moved:
            _drop(self._bindings, key)
            try:
                handle = await self._targets.system_module(key.sys, key.mod, key.index)
            except Unavailable as exc:
                log.info("binding %s waits for its module after a handover: %s", key, exc.detail)
                self._bindings[key] = _waiting
                continue
            except EngineError as exc:
                log.info("binding %s not followed after a handover: %s", key, exc.detail)
                continue
            self._bindings[key] = handle.subscribe_status(self._status_listener(key))
            self._send(protocol.notify(key, handle.state().get(key.name)))
        if url:
            for system_id in sorted({key.sys for key in moved}):
                self._send(protocol.redirect(system_id, websocket_url(url, CLIENT_PATH)))

    def _release(self) -> None:
        for unsubscribe in [*self._bindings.values(), *self._watches.values()]:
            unsubscribe()
        self._bindings.clear()
        self._watches.clear()


def _waiting() -> None:
    """The subscription of a binding whose module does not run within reach yet."""


def _drop(subscriptions: dict[_Key, Unsubscribe], key: _Key) -> None:
    unsubscribe = subscriptions.pop(key, None)
    if unsubscribe is not None:
        unsubscribe()
