"""Edge-controlled modules as seen from the master: proxies over the control link.

A :class:`RemoteModule` has the interface of a local module (``ModuleHandle``), so the
routers, the client websocket and logic drivers call it the same way. Calls go over
the edge's link; status is read from a mirror the edge keeps current by pushing every
change, so reads and bindings cost no round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app.link import LinkClosed, LinkConnection
from app.link.ops import DEBUG_SUBSCRIBE, DEBUG_UNSUBSCRIBE, EXEC, Empty, ModuleArgs, Op
from app.master.links import LinkTable
from app.runtime.handle import ModuleHandle
from app.runtime.status import DebugCallback, StatusCallback, Subscribers, Unsubscribe
from app.services.modules import Locations

log = logging.getLogger(__name__)

#: Extra seconds a link request waits beyond the method's own timeout, so the edge's
#: precise 504 arrives before the link's generic one.
LINK_GRACE_S = 1.0


class StatusMirror:
    """The last known status and commands of every edge module, with subscribers."""

    def __init__(self) -> None:
        self._state: dict[str, dict[str, Any]] = {}
        self._funcs: dict[str, dict[str, dict[str, Any]]] = {}
        self._subscribers: dict[str, Subscribers[[str, Any]]] = {}

    def state(self, module_id: str) -> dict[str, Any]:
        return dict(self._state.get(module_id, {}))

    def funcs(self, module_id: str) -> dict[str, dict[str, Any]]:
        return dict(self._funcs.get(module_id, {}))

    def snapshot(self, module_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {m: dict(self._state[m]) for m in module_ids if m in self._state}

    def replace(self, module_id: str, state: Mapping[str, Any], funcs: Mapping[str, Any]) -> None:
        """A full picture of one module (on connect): notify what differs."""
        previous = self._state.get(module_id, {})
        self._state[module_id] = dict(state)
        self._funcs[module_id] = dict(funcs)
        for name, value in state.items():
            if previous.get(name, _MISSING) != value:
                self._notify(module_id, name, value)

    def update(self, module_id: str, name: str, value: Any) -> None:
        self._state.setdefault(module_id, {})[name] = value
        self._notify(module_id, name, value)

    def subscribe(self, module_id: str, callback: StatusCallback) -> Unsubscribe:
        subscribers = self._subscribers.setdefault(module_id, Subscribers(module_id))
        return subscribers.add(callback)

    def _notify(self, module_id: str, name: str, value: Any) -> None:
        subscribers = self._subscribers.get(module_id)
        if subscribers:
            subscribers.notify(name, value)


_MISSING = object()


class DebugRelay:
    """Edge modules' log lines for the master's subscribers; subscribes the edge on demand."""

    def __init__(self) -> None:
        self._subscribers: dict[str, Subscribers[[str, str]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(
        self, module_id: str, link: Callable[[], LinkConnection | None], callback: DebugCallback
    ) -> Unsubscribe:
        subscribers = self._subscribers.setdefault(module_id, Subscribers(module_id))
        if not subscribers:
            self._send(link, DEBUG_SUBSCRIBE, module_id)
        remove = subscribers.add(callback)
        active = True

        def unsubscribe() -> None:
            nonlocal active
            if not active:
                return
            active = False
            remove()
            if not subscribers:
                self._send(link, DEBUG_UNSUBSCRIBE, module_id)

        return unsubscribe

    def resubscribe(self, link: LinkConnection) -> None:
        """A new link: ask again for every module someone listens to."""
        for module_id, subscribers in self._subscribers.items():
            if subscribers:
                self._send(lambda: link, DEBUG_SUBSCRIBE, module_id)

    def deliver(self, module_id: str, level: str, message: str) -> None:
        subscribers = self._subscribers.get(module_id)
        if subscribers:
            subscribers.notify(level, message)

    def _send(
        self, link: Callable[[], LinkConnection | None], op: Op[ModuleArgs, Empty], module_id: str
    ) -> None:
        connection = link()
        if connection is None:
            return  # resubscribed when the edge connects
        task = asyncio.get_running_loop().create_task(_request(connection, op, module_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _request(link: LinkConnection, op: Op[ModuleArgs, Empty], module_id: str) -> None:
    try:
        await op.call(link, {"module_id": module_id})
    except Exception as exc:
        log.info("%s for %s failed: %s", op.name, module_id, exc)


class RemoteModule:
    """A module an edge runs, reached over that edge's control link."""

    def __init__(
        self,
        module_id: str,
        name: str,
        edge_id: str,
        *,
        link: Callable[[], LinkConnection | None],
        mirror: StatusMirror,
        debug: DebugRelay,
        default_timeout: float,
    ) -> None:
        self._id = module_id
        self._name = name
        self.edge_id = edge_id
        self._link = link
        self._mirror = mirror
        self._debug = debug
        self._default_timeout = default_timeout

    @property
    def id(self) -> str:
        return self._id

    @property
    def name(self) -> str:
        return self._name

    async def exec(
        self,
        method: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        link = self._link()
        if link is None:
            raise LinkClosed(f"edge {self.edge_id!r}")
        budget = timeout if timeout is not None else self._default_timeout
        return await EXEC.call(
            link,
            {
                "module_id": self._id,
                "method": method,
                "args": list(args),
                "kwargs": dict(kwargs or {}),
                "timeout": budget,
            },
            timeout=budget + LINK_GRACE_S,
        )

    def state(self) -> dict[str, Any]:
        return self._mirror.state(self._id)

    def funcs(self) -> dict[str, dict[str, Any]]:
        return self._mirror.funcs(self._id)

    def subscribe_status(self, callback: StatusCallback) -> Unsubscribe:
        return self._mirror.subscribe(self._id, callback)

    def subscribe_debug(self, callback: DebugCallback) -> Unsubscribe:
        return self._debug.subscribe(self._id, self._link, callback)


class RemoteModules:
    """The proxies of the modules edges control now, one per module, kept while it stays.

    The module manager's ``lookup``: finds what this server does not run itself.
    """

    def __init__(
        self,
        locations: Locations,
        links: LinkTable,
        mirror: StatusMirror,
        debug: DebugRelay,
        *,
        default_timeout: float,
    ) -> None:
        self._locations = locations
        self._links = links
        self._mirror = mirror
        self._debug = debug
        self._default_timeout = default_timeout
        self._remote: dict[str, RemoteModule] = {}

    def __call__(self, module_id: str) -> ModuleHandle | None:
        """The proxy of a module an edge controls now; None for the master's own."""
        topology = self._locations.cached_topology
        if topology is None:
            return None
        edge_id = topology.module_locations.get(module_id)
        if edge_id is None or self._locations.runs(edge_id):
            return None
        module = topology.modules.get(module_id)
        if module is None:
            return None
        remote = self._remote.get(module_id)
        if remote is None or remote.edge_id != edge_id or remote.name != module.body["name"]:
            remote = RemoteModule(
                module_id,
                str(module.body["name"]),
                edge_id,
                link=lambda: self._links.get(edge_id),
                mirror=self._mirror,
                debug=self._debug,
                default_timeout=self._default_timeout,
            )
            self._remote[module_id] = remote
        return remote
