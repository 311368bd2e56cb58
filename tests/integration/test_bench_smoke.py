"""``python -m bench --smoke``: every scenario runs and writes believable results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.engine import ROOT

pytestmark = pytest.mark.integration

SCENARIOS = (
    "hotpaths",
    "link",
    "rest",
    "failover",
    "boot",
    "fleet",
    "replication",
    "status",
    "stores",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.timeout(200)
def test_the_smoke_run_writes_results_plots_and_profiles(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--profile", "--results", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr

    for name in SCENARIOS:
        assert (tmp_path / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE)
    summary = load(tmp_path / "summary.json")
    assert summary["smoke"] is True
    assert summary["machine"]["nproc"] >= 1
    assert set(summary["targets"]) == set(SCENARIOS)
    assert "| figure | measured | target | met |" in (tmp_path / "summary.md").read_text()

    link = load(tmp_path / "link.json")
    assert set(link["latency_ms"]) == {"bare websocket", "link protocol", "full exec"}
    assert all(summary["n"] == 50 for summary in link["latency_ms"].values())
    full_exec = link["throughput"]["full exec"]
    assert [rate["concurrency"] for rate in full_exec] == [1, 10]
    assert all(rate["per_second"] > 0 for rate in full_exec)

    rest = load(tmp_path / "rest.json")
    assert set(rest["latency_ms"]) == {
        "direct",
        "forwarding hop",
        "proxy",
        "redirect",
        "over the link",
    }

    failover = load(tmp_path / "failover.json")
    [killed] = failover["runs"]
    assert killed["failover_s"] >= killed["timeout_s"], "the master may not act before timeout"
    assert killed["handover_s"] > 0
    [frozen] = failover["frozen"]
    assert frozen["failover_s"] > killed["failover_s"], "a frozen edge is noticed by pings"

    stores = load(tmp_path / "stores.json")
    expected = {"sqlite", "etcd"} if stores["etcd_installed"] else {"sqlite"}
    assert set(stores["backends"]) == expected
    for measured in stores["backends"].values():
        assert measured["writes_per_s"]["sequential"] > 0
        assert 0 < measured["feed_latency_ms"]["p50"] <= measured["feed_latency_ms"]["max"]

    boot = load(tmp_path / "boot.json")
    assert [run["modules"] for run in boot["runs"]] == [0, 100, 300, 600]
    assert all(run["modules_running"] == run["modules"] for run in boot["runs"])

    fleet = load(tmp_path / "fleet.json")
    assert [run["edges"] for run in fleet["runs"]] == [3, 6, 9]
    for run in fleet["runs"]:
        assert "error" not in run, f"{run.get('error')}\n{run.get('master_log_tail')}"
        assert run["replica_documents"] >= 3 * run["edges"], "every edge caught up"
        assert run["restart"]["devices_released"] == 0
        assert run["failover"]["device_connections"] == run["edges"]
        assert run["failover"]["all_taken_over_s"] >= run["timeout_s"]
        assert run["open_files_per_edge"] > 0, "each edge's link is a socket at the master"
        assert run["connect_master_cpu_ms_per_edge"] > 0
        assert run["restart"]["replicas_caught_up_s"] > 0, "the restart's writes reached all"
        if shutil.which("ss"):  # half a second of a few idle edges may carry no ping
            assert set(run["idle"]["link_bytes_per_edge_s"]) == {"edge_to_master", "master_to_edge"}
    # Growth needs measurable costs, which a few idle edges need not have.
    measured = [t for t in summary["targets"]["fleet"] if "growth" not in t["name"]]
    assert all(t["met"] is not None for t in measured), measured
    assert summary["figures"]["fleet"]["served_within_targets"] in (0, 3, 6, 9)

    replication = load(tmp_path / "replication.json")
    assert all(run["held"] >= run["documents"] for run in replication["runs"])

    status = load(tmp_path / "status.json")
    assert [run["locations"] for run in status["runs"]] == [5, 20]
    assert all(run["snapshot_kib"] > 0 for run in status["runs"])

    hotpaths = load(tmp_path / "hotpaths.json")
    assert hotpaths["codec"]["exec request"]["bytes"] > 100

    for profile in ("link_master", "link_edge", "rest_proxy_master", "boot", "fleet_master"):
        assert "Ordered by: internal time" in (tmp_path / f"profile_{profile}.txt").read_text()
