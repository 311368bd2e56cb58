"""PNG figures of the results, drawn from the same dictionaries the JSON files hold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, chosen before pyplot loads

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

PERCENTILES = ("p50", "p90", "p99")


def _percentile_bars(axes: Axes, latency: Mapping[str, Mapping[str, float]], title: str) -> None:
    names = list(latency)
    width = 0.8 / len(PERCENTILES)
    for offset, key in enumerate(PERCENTILES):
        positions = [i + (offset - 1) * width for i in range(len(names))]
        bars = axes.bar(positions, [latency[n][key] for n in names], width, label=key)
        axes.bar_label(bars, fmt="%.2f", fontsize=7)
    axes.set_xticks(range(len(names)), names)
    axes.set_ylabel("round trip (ms)")
    axes.set_title(title)
    axes.legend()


def _save(figure: Any, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def link(result: Mapping[str, Any], path: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    _percentile_bars(left, result["latency_ms"], "One call at a time")
    rates: Mapping[str, Sequence[Mapping[str, Any]]] = result["throughput"]
    names = list(rates)
    concurrencies = [r["concurrency"] for r in rates[names[0]]]
    width = 0.8 / len(names)
    for offset, name in enumerate(names):
        positions = [i + (offset - (len(names) - 1) / 2) * width for i in range(len(concurrencies))]
        bars = right.bar(positions, [r["per_second"] for r in rates[name]], width, label=name)
        right.bar_label(bars, fmt="%.0f", fontsize=7)
    right.axhline(5000, color="grey", linestyle="--", linewidth=1, label="target (full exec)")
    right.set_xticks(range(len(concurrencies)), [f"{c} concurrent" for c in concurrencies])
    right.set_ylabel("calls per second")
    right.set_title("Throughput over one connection")
    right.legend()
    figure.suptitle("Control link: exec master → edge Echo module vs websocket baselines")
    _save(figure, path)


def rest(result: Mapping[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(figsize=(8, 4.5))
    _percentile_bars(axes, result["latency_ms"], "REST exec of an edge module (httpx client)")
    _save(figure, path)


def failover(result: Mapping[str, Any], path: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    runs, frozen = result["runs"], result["frozen"]
    timeouts = sorted({r["timeout_s"] for r in runs})
    left.plot(timeouts, timeouts, color="grey", linestyle="--", linewidth=1, label="timeout")
    left.scatter(
        [r["timeout_s"] for r in runs], [r["failover_s"] for r in runs], label="edge killed"
    )
    left.scatter(
        [r["timeout_s"] for r in frozen],
        [r["failover_s"] for r in frozen],
        marker="x",
        label="edge frozen (SIGSTOP)",
    )
    left.set_xlabel("configured timeout (s)")
    left.set_ylabel("until the master holds the device (s)")
    left.set_title("Failover")
    left.legend()
    labels = [f"{r['timeout_s']:g} s #{i}" for i, r in enumerate(runs, start=1)]
    right.bar(labels, [r["handover_s"] * 1000 for r in runs], label="restore → edge holds device")
    right.bar(
        labels, [r["no_controller_s"] * 1000 for r in runs], label="device without controller"
    )
    right.set_ylabel("ms")
    right.set_title("Handover on POST /restore")
    right.tick_params(axis="x", labelrotation=45, labelsize=7)
    right.legend()
    _save(figure, path)


def boot(result: Mapping[str, Any], path: Path) -> None:
    runs = [r for r in result["runs"] if not r.get("timed_out")]
    sizes = [r["modules"] for r in runs]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for axes, key, label in (
        (left, "ready_s", "process start → /api/ready 200 (s)"),
        (right, "rss_mib", "RSS when ready (MiB)"),
    ):
        fit = result["fits"][key]
        axes.plot(sizes, [r[key] for r in runs], "o-", label="measured")
        axes.plot(
            sizes,
            [fit["fixed"] + fit["per_module"] * n for n in sizes],
            "--",
            color="grey",
            label=f"linear fit (R² {fit['r2']:.3f})",
        )
        axes.set_xlabel("modules")
        axes.set_ylabel(label)
    left.plot([10_000], [5.0], "v", color="red", label="target: 10,000 ready in ≤ 5 s")
    left.legend()
    right.legend()
    left.set_title("Master boot time")
    right.set_title("Master memory")
    _save(figure, path)


def fleet(result: Mapping[str, Any], path: Path) -> None:
    runs = [r for r in result["runs"] if "error" not in r]
    sizes = [r["edges"] for r in runs]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    memory, cpu, times = axes
    memory.plot(sizes, [r["idle"]["rss_mib"] for r in runs], marker="o", label="idle")
    memory.plot(sizes, [r["rss_mib_no_edges"] for r in runs], marker="o", label="no edge linked")
    memory.set_xlabel("edges")
    memory.set_ylabel("master RSS (MiB)")
    memory.set_title("Master memory")
    memory.legend()
    cpu.plot(sizes, [r["idle"]["master_cpu_percent"] for r in runs], marker="o")
    cpu.set_xlabel("edges")
    cpu.set_ylabel("% of one core")
    cpu.set_title("Master CPU, edges idle")
    series = {
        "connect + catch up": [r["connect_catch_up_s"] for r in runs],
        "config fan-out (max)": [max(r["fanout_s"]) for r in runs],
        "restart until negotiated": [r["restart"]["negotiated_online_s"] for r in runs],
        "failover, all taken over": [r["failover"]["all_taken_over_s"] for r in runs],
    }
    for name, values in series.items():
        times.plot(sizes, values, marker="o", label=name)
    times.set_xlabel("edges")
    times.set_ylabel("seconds")
    times.set_title("Fleet operations")
    times.legend(fontsize=8)
    _save(figure, path)


def replication(result: Mapping[str, Any], path: Path) -> None:
    runs = result["runs"]
    labels = [f"{r['documents']:,} documents" for r in runs]
    figure, axes = plt.subplots(figsize=(8, 4.5))
    width = 0.38
    for offset, (key, name) in enumerate(
        (("catch_up_per_s", "replica catch-up"), ("raw_insert_per_s", "raw insert_many"))
    ):
        positions = [i + (offset - 0.5) * width for i in range(len(runs))]
        bars = axes.bar(positions, [r[key] for r in runs], width, label=name)
        axes.bar_label(bars, fmt="%.0f", fontsize=7)
    axes.set_xticks(range(len(runs)), labels)
    axes.set_ylabel("documents per second")
    axes.set_title("Replica catch-up into an empty SQLite store")
    axes.legend()
    _save(figure, path)


def hotpaths(result: Mapping[str, Any], path: Path) -> None:
    """Each choice: microseconds per operation of every way measured."""
    tables: list[tuple[str, Mapping[str, float]]] = []
    for frame, row in result["codec"].items():
        tables.append((f"write {frame}", row["write_us"]))
        tables.append((f"read {frame}", row["read_us"]))
    tables.append(("argument check", result["argument_check_us"]))
    tables.append(("a call's task", result["call_task_us"]))
    tables.append(("proxy client, one request", result["proxy_client_us"]))
    figure, axes = plt.subplots(len(tables), 1, figsize=(9, 1.3 * len(tables) + 1))
    for ax, (title, times) in zip(axes, tables, strict=True):
        names = list(times)
        bars = ax.barh(names, [times[n] for n in names])
        ax.bar_label(bars, fmt="%.2f µs", fontsize=7)
        ax.set_title(title, fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        ax.invert_yaxis()
    _save(figure, path)


def status(result: Mapping[str, Any], path: Path) -> None:
    """The master's CPU with status pages open, per estate size."""
    runs = result["runs"]
    figure, axes = plt.subplots(figsize=(8, 4.5))
    viewers = list(runs[0]["cpu_percent_by_viewers"])
    width = 0.8 / len(runs)
    for offset, run in enumerate(runs):
        cpu = run["cpu_percent_by_viewers"]
        positions = [i + offset * width for i in range(len(viewers))]
        axes.bar(
            positions, [cpu[v] for v in viewers], width, label=f"{run['locations']:,} locations"
        )
    axes.set_xticks([i + width * (len(runs) - 1) / 2 for i in range(len(viewers))], viewers)
    axes.set_xlabel("status pages open")
    axes.set_ylabel("master CPU, % of a core")
    axes.set_title("The status page: what each open page costs the master")
    axes.legend()
    _save(figure, path)


def stores(result: Mapping[str, Any], path: Path) -> None:
    """Writes per second and feed latency, one group of bars per backend."""
    backends: Mapping[str, Mapping[str, Any]] = result["backends"]
    names = list(backends)
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.38
    for offset, key in enumerate(("sequential", "concurrent")):
        positions = [i + (offset - 0.5) * width for i in range(len(names))]
        values = [backends[n]["writes_per_s"][key] for n in names]
        bars = left.bar(positions, values, width, label=key)
        left.bar_label(bars, fmt="%.0f", fontsize=7)
    left.set_xticks(range(len(names)), names)
    left.set_ylabel("document writes per second")
    left.set_title("Writes (upsert, ~300 bytes)")
    left.legend()
    _percentile_bars(right, {n: backends[n]["feed_latency_ms"] for n in names}, "Change feed")
    right.set_ylabel("write start to follower's read (ms)")
    figure.suptitle("Stores: etcd (three members on loopback) beside SQLite")
    _save(figure, path)


PLOTS = {
    "link": link,
    "rest": rest,
    "failover": failover,
    "boot": boot,
    "fleet": fleet,
    "replication": replication,
    "hotpaths": hotpaths,
    "status": status,
    "stores": stores,
}
