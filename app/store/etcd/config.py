"""The database URL of the etcd store, parsed into endpoints, prefix, TLS and credentials."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from app.store.base import positive_seconds

DEFAULT_TIMEOUT_S = 5.0
SCHEMES = {"etcd": "http", "etcds": "https"}
TLS_FILES = ("ca", "cert", "key")


@dataclass(frozen=True, slots=True)
class EtcdConfig:
    """Where the cluster is and how to reach it.

    ``endpoints`` are base URLs (``http://host:port``); ``prefix`` is the key prefix
    every key of this engine lives under (no trailing slash).
    """

    endpoints: tuple[str, ...]
    prefix: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_url(cls, url: str) -> EtcdConfig:
        """``etcd[s]://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]/PREFIX[?ca=…&cert=…&key=…&timeout=…]``."""
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"not an etcd URL (etcd:// or etcds://): {redacted(url)!r}")
        credentials, has_credentials, hosts = parts.netloc.rpartition("@")
        username: str | None = None
        password: str | None = None
        if has_credentials:
            name, has_password, secret = credentials.partition(":")
            if not (name and has_password):
                raise ValueError("etcd credentials read etcd://USER:PASSWORD@HOST:PORT/PREFIX")
            username, password = unquote(name), unquote(secret)
        if not hosts:
            raise ValueError("the etcd URL names no host")
        endpoints = tuple(f"{SCHEMES[parts.scheme]}://{host}" for host in hosts.split(",") if host)
        prefix = "/" + unquote(parts.path).strip("/")
        if prefix == "/" or not prefix.isascii():
            raise ValueError("the etcd URL needs an ASCII key prefix: etcd://HOST:PORT/PREFIX")
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        paths = {
            name: Path(text) if (text := options.pop(name, "")) else None for name in TLS_FILES
        }
        timeout_s = positive_seconds(options.pop("timeout", str(DEFAULT_TIMEOUT_S)))
        if options:
            raise ValueError(f"unknown etcd URL option(s): {', '.join(sorted(options))}")
        if (paths["cert"] is None) != (paths["key"] is None):
            raise ValueError("a client certificate needs both cert= and key=")
        if parts.scheme == "etcd" and any(paths.values()):
            raise ValueError("ca=, cert= and key= need TLS: use etcds://")
        return cls(
            endpoints=endpoints,
            prefix=prefix,
            username=username,
            password=password,
            ca=paths["ca"],
            cert=paths["cert"],
            key=paths["key"],
            timeout_s=timeout_s,
        )


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    credentials, has_credentials, hosts = parts.netloc.rpartition("@")
    if not has_credentials:
        return url
    name = credentials.partition(":")[0]
    return parts._replace(netloc=f"{name}:***@{hosts}").geturl()


def _path(text: str) -> Path | None:
    return Path(text) if text else None
