"""Settings come from ENGINE_* variables, built by a function, never at import time."""

from __future__ import annotations

import pytest

from app.settings import load_settings


def test_defaults_make_a_master(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENGINE_EDGE_ID", raising=False)
    settings = load_settings(_env_file=None)
    assert not settings.is_edge
    assert settings.node_name == "master"
    assert settings.database_url == "sqlite:///./data/engine.db"
    assert settings.client_routing == "redirect"
    assert settings.link_retry_s == 3 and settings.boot_wait_s == 6
    assert settings.base_url == "http://127.0.0.1:8000"


def test_environment_picks_the_edge_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_EDGE_ID", "edge-1")
    monkeypatch.setenv("ENGINE_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("ENGINE_PUBLIC_URL", "https://edge.example/")
    settings = load_settings(_env_file=None)
    assert settings.is_edge
    assert settings.node_name == "edge:edge-1"
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.base_url == "https://edge.example"


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE_CLIENT_ROUTING", "teleport")
    with pytest.raises(ValueError, match="client_routing"):
        load_settings(_env_file=None)
