"""The far end of the baselines: connects out, as an edge does, and answers every call.

``python -m bench.echo_peer ws://HOST:PORT bare`` sends back every frame it receives;
``... link`` serves the control-link protocol (``LinkConnection``) with an ``exec``
op that returns its first argument, without the module runtime. Both run until the
server closes the connection.
"""

from __future__ import annotations

import sys
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from app.link import DEFAULT_MAX_SIZE, LinkConnection, WebsocketsTransport
from app.link.ops import EXEC
from bench.support import run


async def echo_frames(websocket: ClientConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


async def echo_execs(websocket: ClientConnection) -> None:
    async def exec_(args: dict[str, Any]) -> Any:
        return args["args"][0]

    link = LinkConnection(
        WebsocketsTransport(websocket),
        handlers={EXEC.name: exec_},
        name="bench",
        max_size=DEFAULT_MAX_SIZE,
    )
    await link.run()


MODES = {"bare": echo_frames, "link": echo_execs}


async def main(url: str, mode: str) -> None:
    # The link's own settings (app.edge.uplink): no permessage-deflate.
    async with connect(url, max_size=DEFAULT_MAX_SIZE, compression=None) as websocket:
        await MODES[mode](websocket)


if __name__ == "__main__":
    run(main(sys.argv[1], sys.argv[2]))
