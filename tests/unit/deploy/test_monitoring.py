"""The shipped Prometheus alert rules and Grafana dashboard (``deploy/``), checked against
promtool and against the metric names a master and an edge export."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import compose, create_app
from app.settings import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboard.json"
#: The alerts the rules must hold, each with a promtool test case.
ALERTS = {
    "EngineTwoControllers",
    "EngineLocationFailoverPending",
    "EngineEdgeOffline",
    "EngineLocationRunsNowhere",
    "EngineStoreNotWritable",
    "EngineLinkRefused",
    "EngineMasterUnreachable",
}
METRIC = re.compile(r"\bengine_[a-z0-9_]+\b")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian package prometheus; make test-deps)")
    return found


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=RULES.parent)


def test_promtool_checks_the_rules() -> None:
    checked = run(promtool(), "check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(ALERTS)} rules found" in checked.stdout


def test_promtool_runs_a_test_case_for_each_alert() -> None:
    tested = run(promtool(), "test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    defined = set(re.findall(r"^\s+- alert: (\w+)", RULES.read_text(), flags=re.M))
    assert defined == ALERTS
    firing = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- ", RULE_TESTS.read_text()))
    assert firing == ALERTS, "every alert needs a case where it fires"


async def exported(settings: Settings) -> set[str]:
    """Every metric name ``settings``' server exports (histograms with their series)."""
    app = create_app(settings, node=compose(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        text = (await c.get("/metrics")).text
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@pytest.fixture(scope="module")
def names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    root = tmp_path_factory.mktemp("metrics")
    master = Settings(database_url=f"sqlite:///{root / 'master.db'}", drivers_path=root / "d")
    edge = master.model_copy(
        update={
            "database_url": f"sqlite:///{root / 'edge.db'}",
            "edge_id": "edge-1",
            "master_url": "http://127.0.0.1:9",
            "edge_secret": "s",
        }
    )

    async def both() -> set[str]:
        return await exported(master) | await exported(edge)

    return asyncio.run(both())


def expressions(value: Any) -> list[str]:
    """Every ``expr`` in a dashboard, however deep."""
    if isinstance(value, dict):
        found = [value["expr"]] if isinstance(value.get("expr"), str) else []
        return found + [e for item in value.values() for e in expressions(item)]
    if isinstance(value, list):
        return [e for item in value for e in expressions(item)]
    return []


def test_the_dashboard_uses_only_metrics_the_servers_export(names: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = expressions(dashboard)
    assert len(queries) >= 15
    used = {name for query in queries for name in METRIC.findall(query)}
    assert used - names == set(), "the dashboard queries metrics nobody exports"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel["datasource"]["uid"] == "${DS_PROMETHEUS}" for panel in dashboard["panels"])
    # The per-location view and the handover counter are on it.
    assert {"engine_location_controller", "engine_handovers_total"} <= used


def test_the_rules_use_only_metrics_the_servers_export(names: set[str]) -> None:
    used = set(METRIC.findall(RULES.read_text()))
    assert used, "no metric in the rules"
    assert used - names == set(), "the rules use metrics nobody exports"
