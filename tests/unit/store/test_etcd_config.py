"""The etcd store's database URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.store import open_store
from app.store.etcd import EtcdConfig, EtcdStore
from app.store.etcd.client import prefix_end


def test_endpoints_prefix_and_timeout() -> None:
    config = EtcdConfig.from_url("etcd://10.0.0.1:2379,10.0.0.2:2379/engine/site-a?timeout=2.5")
    assert config.endpoints == ("http://10.0.0.1:2379", "http://10.0.0.2:2379")
    assert config.prefix == "/engine/site-a"
    assert config.timeout_s == 2.5
    assert config.username is None


def test_credentials_are_decoded_and_never_shown() -> None:
    config = EtcdConfig.from_url("etcd://engine:p%40ss%3Aword@h:2379/engine")
    assert (config.username, config.password) == ("engine", "p@ss:word")
    assert "p@ss" not in repr(config)


def test_tls_with_a_ca_and_a_client_certificate() -> None:
    config = EtcdConfig.from_url("etcds://h:2379/engine?ca=/ca.pem&cert=/c.pem&key=/k.pem")
    assert config.endpoints == ("https://h:2379",)
    assert (config.ca, config.cert, config.key) == (Path("/ca.pem"), Path("/c.pem"), Path("/k.pem"))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("etcd://h:2379", "prefix"),
        ("etcd://h:2379/", "prefix"),
        ("etcd:///engine", "no host"),
        ("etcd://user@h:2379/engine", "USER:PASSWORD"),
        ("etcd://h:2379/engine?ca=/ca.pem", "etcds://"),
        ("etcds://h:2379/engine?cert=/c.pem", "both cert= and key="),
        ("etcd://h:2379/engine?timeout=0", "positive"),
        ("etcd://h:2379/engine?color=blue", "unknown"),
    ],
)
def test_a_bad_url_is_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        EtcdConfig.from_url(url)


def test_a_refused_url_never_echoes_the_password() -> None:
    with pytest.raises(ValueError, match="prefix") as raised:
        EtcdConfig.from_url("etcd://user:hunter2@h:2379/")
    assert "hunter2" not in str(raised.value)


def test_open_store_picks_the_etcd_store() -> None:
    assert isinstance(open_store("etcd://h:2379/engine"), EtcdStore)
    assert isinstance(open_store("etcds://h:2379/engine"), EtcdStore)


def test_a_prefix_range_ends_past_every_key_under_it() -> None:
    assert prefix_end("/engine/doc/") == "/engine/doc0"
    with pytest.raises(ValueError, match="ASCII"):
        prefix_end("/ünï/")
