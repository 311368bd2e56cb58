"""The server process wrapper's pure parts; tests/integration runs real servers with it."""

from __future__ import annotations

from pathlib import Path

from app.node_process import NodeProcess, node_environment


def test_children_get_only_their_own_engine_settings() -> None:
    env = node_environment(
        {"PATH": "/bin", "ENGINE_EDGE_ID": "stale", "ENGINE_ADMIN_TOKEN": "stale"},
        {"ENGINE_DATABASE_URL": "sqlite:///x.db"},
    )
    assert env == {
        "PATH": "/bin",
        "ENGINE_DATABASE_URL": "sqlite:///x.db",
        "PYTHONUNBUFFERED": "1",
    }


def test_a_server_gets_its_own_store_drivers_and_public_url(tmp_path: Path) -> None:
    process = NodeProcess("edge", tmp_path / "edge", 8123, {"ENGINE_EDGE_ID": "e1"}, tls=True)
    assert process.url == "https://127.0.0.1:8123"
    assert process.settings == {
        "ENGINE_DATABASE_URL": f"sqlite:///{tmp_path / 'edge' / 'engine.db'}",
        "ENGINE_DRIVERS_PATH": str(tmp_path / "edge" / "drivers"),
        "ENGINE_PUBLIC_URL": "https://127.0.0.1:8123",
        "ENGINE_EDGE_ID": "e1",
    }
    assert process.command()[-4:] == ["app", "serve", "--port", "8123"]
    assert not process.running
