"""What a server or the demo checks before it starts, so that a busy port, a missing file
or directory, or a bad setting is one line naming it rather than a traceback (or, worse,
a second server that seems to start and then answers for the first one's port)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.settings import Settings


class Unfit(Exception):
    """Why the server cannot start, in one line."""


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment; raises :class:`Unfit` naming every bad one."""
    from pydantic import ValidationError

    from app.settings import load_settings as load

    try:
        return load(**overrides)
    except ValidationError as exc:
        raise Unfit("; ".join(_setting_error(error) for error in exc.errors())) from None


def _setting_error(error: Any) -> str:
    message = str(error.get("msg", "invalid"))
    location = [str(part) for part in error.get("loc", ()) if not str(part).isdigit()]
    if not location:
        return f"bad settings: {message.removeprefix('Value error, ')}"
    name = "ENGINE_" + location[0].upper()
    given = error.get("input")
    shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
    return f"bad setting {name}{shown}: {message}"


def check_listen(host: str, port: int, *, how: str) -> None:
    """Raise :class:`Unfit` unless ``host:port`` can be listened on; ``how`` says how to
    pick another."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise Unfit(f"cannot listen on {host}:{port}: unknown host ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = "the port is in use (another server or demo?)"
            elif exc.errno == errno.EACCES:
                why = "permission denied (ports below 1024 need privileges)"
            else:
                why = exc.strerror or str(exc)
            raise Unfit(f"cannot listen on {host}:{port}: {why}; {how}") from None


def check_directory(path: Path, *, what: str) -> None:
    """Create ``path`` (a directory) if needed; raise :class:`Unfit` naming ``what``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Unfit(f"{what}: cannot create the directory {path}: {exc.strerror}") from None
    if not path.is_dir():
        raise Unfit(f"{what}: {path} is not a directory")


def check_server(settings: Settings) -> None:
    """Everything ``serve`` needs that the settings name: its TLS files, the directory of
    its embedded store and of its driver checkout, its port."""
    for name, file in (
        ("ENGINE_TLS_CERT", settings.tls_cert),
        ("ENGINE_TLS_KEY", settings.tls_key),
        ("ENGINE_TLS_CA", settings.tls_ca),
    ):
        if file is not None and not file.is_file():
            raise Unfit(f"{name}: no such file {file}")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise Unfit("ENGINE_TLS_CERT and ENGINE_TLS_KEY go together: set both or neither")
    database = settings.database_url
    if database.startswith("sqlite:///") and ":memory:" not in database:
        check_directory(
            Path(database.removeprefix("sqlite:///")).parent, what="ENGINE_DATABASE_URL"
        )
    check_directory(settings.drivers_path.parent, what="ENGINE_DRIVERS_PATH")
    check_listen(settings.host, settings.port, how="choose another with --port or ENGINE_PORT")
