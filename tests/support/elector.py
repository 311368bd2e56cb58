"""A master's leader election alone, as a process the tests can kill or freeze.

``python -m tests.support.elector URL NAME LEASE_S`` campaigns for the leadership of
the cluster under URL's prefix and prints one JSON line per change of its role:
``{"name", "leading", "epoch"}``. SIGTERM resigns and exits.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from app.cluster import Elector, NodeIdentity
from app.store.etcd import EtcdClient, EtcdConfig


async def main(url: str, name: str, lease_s: int) -> None:
    config = EtcdConfig.from_url(url)
    client = EtcdClient(config, timeout_s=1.0)
    elector = Elector(
        client, config.prefix, NodeIdentity(name, f"http://{name}.test"), lease_s=lease_s
    )
    runner = asyncio.create_task(elector.run())
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, runner.cancel)

    async def report() -> None:
        async for term in elector.roles():
            line = {"name": name, "leading": term is not None, "epoch": term and term.epoch}
            print(json.dumps(line), flush=True)

    reporter = asyncio.create_task(report())
    try:
        await runner
    except asyncio.CancelledError:
        pass
    finally:
        reporter.cancel()
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
