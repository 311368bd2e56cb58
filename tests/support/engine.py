"""What integration tests share about the servers they start.

The servers themselves are :class:`app.node_process.NodeProcess`, the wrapper the demo
and the benchmarks use too.
"""

from __future__ import annotations

from pathlib import Path

#: The checkout: the working directory of the commands tests run (ctl, bench, the demo).
ROOT = Path(__file__).resolve().parents[2]
#: The admin token integration tests give the masters they start.
ADMIN_TOKEN = "integration-admin"
