"""The demo's pieces: seeding through the API, what it prints, its environment."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
from pathlib import Path

import httpx
import pytest

from app.demo import (
    DemoConfig,
    DemoError,
    DevicePorts,
    Seeded,
    Seeder,
    claim_data_dir,
    config_from,
    control_line,
    exit_description,
    instructions,
    link_line,
    remove_pid_file,
)
from app.node_process import free_port

PORTS = DevicePorts(edge_displays=(4101, 4102), master_display=4103, lighting=4104)


def demo_config(tmp_path: Path, **changes: object) -> DemoConfig:
    values: dict[str, object] = {
        "data_dir": tmp_path / "demo",
        "master_port": 8100,
        "edge_port": 8101,
        "token": "t0ken",
        "failover_timeout": 10.0,
    }
    values.update(changes)
    return DemoConfig(**values)  # type: ignore[arg-type]


async def test_seeding_creates_an_edge_room_and_a_master_room(api: httpx.AsyncClient) -> None:
    seeded = await Seeder(api).seed("http://127.0.0.1:8101", 7.5, PORTS)

    edge = (await api.get(f"/api/edges/{seeded.edge_id}")).json()
    assert edge["failover"] is True
    assert edge["timeout"] == 7.5
    assert (edge["window_start"], edge["window_length"], edge["timezone"]) == (
        "0 3 * * *",
        3600,
        "UTC",
    )
    assert edge["api_url"] == "http://127.0.0.1:8101"
    assert seeded.edge_secret

    room = (await api.get(f"/api/systems/{seeded.edge_system_id}")).json()
    lobby = (await api.get(f"/api/systems/{seeded.master_system_id}")).json()
    assert room["edge_control_id"] == seeded.edge_id
    assert lobby.get("edge_control_id") is None

    async def modules(system: dict[str, object]) -> list[tuple[str, int | None]]:
        ids = system["modules"]
        assert isinstance(ids, list)
        bodies = [(await api.get(f"/api/modules/{m}")).json() for m in ids]
        return [(body["name"], body.get("port")) for body in bodies]

    assert await modules(room) == [
        ("Display", 4101),
        ("Display", 4102),
        ("Lighting", 4104),
        ("AllOff", None),
    ]
    assert await modules(lobby) == [("Display", 4103)]


async def test_seeding_reports_what_the_master_refused(api: httpx.AsyncClient) -> None:
    with pytest.raises(DemoError, match="creating edges failed"):
        await Seeder(api).seed("not a url", 5, PORTS)


def test_the_instructions_export_everything_the_commands_use(tmp_path: Path) -> None:
    config = demo_config(tmp_path / "with space")
    seeded = Seeded("edge-1", "secret", "sys-room", "sys-lobby")
    text = instructions(config, seeded, master_pid=11, edge_pid=12)

    [export] = [line for line in text.splitlines() if line.startswith("export ")]
    exported = dict(word.split("=", 1) for word in shlex.split(export)[1:])
    assert exported == {
        "T": "t0ken",
        "API": "http://127.0.0.1:8100/api",
        "EDGE": "edge-1",
        "ROOM": "sys-room",
        "LOBBY": "sys-lobby",
        "EDGE_URL": "http://127.0.0.1:8101",
        "DEMO": str(config.data_dir.resolve()),
        "ENGINE_URL": "http://127.0.0.1:8100",
        "ENGINE_TOKEN": "t0ken",
    }
    assert "status page  http://127.0.0.1:8100/" in text
    assert "http://127.0.0.1:8101" in text
    assert "pid 11" in text
    assert "pid 12" in text
    assert "secret" not in text
    assert "curl -s --location-trusted" in text
    assert "kill -9 $(cat $DEMO/edge.pid)" in text
    assert "kill -USR1 $(cat $DEMO/demo.pid)" in text
    assert "ctl restore $EDGE" in text
    assert "waits 10 s" in text
    assert "kill -9 $(cat $DEMO/master.pid)" in text
    assert "$EDGE_URL/api/systems/$ROOM/exec" in text


def test_the_demo_says_when_the_edge_loses_its_master() -> None:
    down = {"connected": False, "error": "ConnectionRefusedError: connect call failed"}
    assert link_line(down) == (
        "edge: its link to the master is down (ConnectionRefusedError: connect call failed); "
        "it runs the room on its own"
    )
    assert link_line({"connected": True}) == "edge: linked to the master again"


def test_a_busy_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = argparse.Namespace(
            data_dir=tmp_path, master_port=port, edge_port=0, token="t", failover_timeout=4.0
        )
        with pytest.raises(DemoError) as refused:
            config_from(args)
    assert str(refused.value) == (
        f"cannot listen on 127.0.0.1:{port}: the port is in use (another server or demo?); "
        "choose another with --master-port (0: any free port)"
    )


def test_a_data_directory_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    args = argparse.Namespace(
        data_dir=tmp_path / "file" / "demo", master_port=0, edge_port=0, token="t",
        failover_timeout=4.0,
    )  # fmt: skip
    with pytest.raises(DemoError, match=r"^--data-dir: cannot create the directory .*/file/demo"):
        config_from(args)


def test_a_control_line_is_printed_only_when_control_changes() -> None:
    first = {"controller": "edge", "online": True, "epoch": 1, "reason": "edge connected"}
    assert control_line(None, first) == "control: edge (epoch 1), edge online: edge connected"
    assert control_line(first, {**first, "reason": "same state, new words"}) is None

    failed = {
        "controller": "master",
        "online": False,
        "epoch": 2,
        "failover_active": True,
        "reason": "",
    }
    assert control_line(first, failed) == "control: master (epoch 2), edge offline, failover active"


def test_exit_descriptions_name_the_signal() -> None:
    assert exit_description(-signal.SIGKILL) == "killed by SIGKILL"
    assert exit_description(3) == "exit code 3"


def test_a_fresh_run_clears_the_stores_and_claims_the_directory(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    for stale in ("master/engine.db", "edge/engine.db", "notes.txt"):
        (config.data_dir / stale).parent.mkdir(parents=True, exist_ok=True)
        (config.data_dir / stale).write_text("old")

    claim_data_dir(config)

    assert not (config.data_dir / "master").exists()
    assert not (config.data_dir / "edge").exists()
    assert (config.data_dir / "notes.txt").exists()
    assert config.demo_pid_file.read_text().strip() == str(os.getpid())


def test_a_directory_another_live_demo_uses_is_refused(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    (config.data_dir / "master").mkdir(parents=True)
    config.demo_pid_file.write_text(f"{os.getppid()}\n")

    with pytest.raises(DemoError, match="already using"):
        claim_data_dir(config)
    assert (config.data_dir / "master").exists()


def test_options_pick_free_ports_and_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGINE_ADMIN_TOKEN", "from-env")
    chosen = free_port()
    args = argparse.Namespace(
        data_dir=tmp_path, master_port=0, edge_port=chosen, token=None, failover_timeout=4.0
    )
    config = config_from(args)
    assert config.master_port > 0
    assert config.edge_port == chosen
    assert config.token == "from-env"

    with pytest.raises(DemoError, match="above 0"):
        config_from(argparse.Namespace(**{**vars(args), "failover_timeout": 0.0}))


def test_a_stale_edge_pid_file_is_removed_when_a_demo_starts(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    config.data_dir.mkdir(parents=True)
    config.edge_pid_file.write_text("999999\n")

    claim_data_dir(config)

    assert not config.edge_pid_file.exists()


def test_only_a_pid_file_naming_our_process_is_removed(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours.pid", tmp_path / "theirs.pid"
    ours.write_text("41\n")
    theirs.write_text("42\n")

    remove_pid_file(ours, 41)
    remove_pid_file(theirs, 41)
    remove_pid_file(tmp_path / "missing.pid", 41)

    assert not ours.exists()
    assert theirs.read_text() == "42\n"
