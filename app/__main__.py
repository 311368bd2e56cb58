"""Run a server, the demo, or operate a running server.

The parser is built without importing any command's code: each command's module (the
web stack for serve, the HTTP client for ctl, the Couchbase tools) is imported only
when that command runs, so `ctl` starts fast and a missing optional package affects
only the command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"
DEFAULT_URL = "http://127.0.0.1:8000"
#: The interpreter's thread switch interval for a server (see `_serve`).
SWITCH_INTERVAL_S = 0.0005

Handler = Callable[[argparse.Namespace], int]


def _lazy(module: str, function: str) -> Handler:
    """A handler that imports ``module`` only when the command runs."""

    def handler(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(module), function)(args))

    return handler


#: ``serve --log-level`` choices: uvicorn's levels.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _serve(args: argparse.Namespace) -> int:
    from app.preflight import Unfit, check_server, load_settings

    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    try:
        settings = load_settings(**overrides)
        check_server(settings)
    except Unfit as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import uvicorn

    from app.main import create_app

    app = create_app(settings)
    # Every store operation hands a statement to the embedded store's thread and waits
    # for its answer; while the event loop is busy (a thousand edges linking at once)
    # that thread waits for the interpreter lock up to the switch interval, 5 ms by
    # default, at every hop. 0.5 ms lets it in sooner (bench/README.md §6).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        timeout_graceful_shutdown=5,
        # Every websocket this server accepts: front ends' above all. The control link
        # does not rely on it (the master pings each edge over the link itself), so a
        # client is not held to the link's second-scale liveness.
        ws_ping_interval=settings.ws_ping_interval_s,
        ws_ping_timeout=settings.ws_ping_interval_s,
        ws_max_size=settings.link_max_frame,
        access_log=args.access_log,
    )
    return 0


def openapi_document() -> str:
    """The OpenAPI document as committed: stable key order, trailing newline."""
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(database_url="sqlite:///:memory:"))
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


def _openapi(args: argparse.Namespace) -> int:
    text = openapi_document()
    if args.check:
        if not OPENAPI_PATH.exists() or OPENAPI_PATH.read_text() != text:
            print(f"{OPENAPI_PATH} is out of date: run `python -m app openapi`", file=sys.stderr)
            return 1
        return 0
    OPENAPI_PATH.parent.mkdir(parents=True, exist_ok=True)
    OPENAPI_PATH.write_text(text)
    print(f"wrote {OPENAPI_PATH}")
    return 0


def program_name(argv0: str) -> str:
    """``engine`` when run as the console script, ``python -m app`` as a module."""
    name = Path(argv0).name
    return "python -m app" if name in ("__main__.py", "") else name


def _version_text() -> str:
    from app.version import version

    return f"engine {version()}"


def _seconds(text: str) -> float:
    """A positive number of seconds (``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def _grace(text: str) -> float:
    """Zero or more seconds (``--grace``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run one server; the role comes from ENGINE_EDGE_ID",
        description="Run one server: the master, or the edge named by ENGINE_EDGE_ID. "
        "Settings come from ENGINE_* environment variables (see the README).",
    )
    serve.add_argument("--host", help="interface to listen on (ENGINE_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (ENGINE_PORT)")
    serve.add_argument(
        "--log-level", default="info", choices=LOG_LEVELS, help="how much to log (info)"
    )
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=_serve)


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="a master, an edge and simulated devices on loopback, until Ctrl-C",
        description="Start a master and an edge as server processes, each with its own "
        "embedded store, serve simulated devices, seed an edge location whose room runs on "
        "the edge and a room on the master, and print commands to paste. Follow who "
        "controls the edge's devices while the edge is killed, started again (kill -USR1 "
        "to the demo) and restored; kill the master and the edge runs the room on its own "
        "(kill -USR1 starts the master again), until Ctrl-C stops everything.",
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data/demo"),
        help="stores, logs and pid files; its master/ and edge/ start fresh (data/demo)",
    )
    demo.add_argument("--master-port", type=int, default=8000, help="0: any free port (8000)")
    demo.add_argument("--edge-port", type=int, default=8001, help="0: any free port (8001)")
    demo.add_argument(
        "--token", help="the admin token (default: ENGINE_ADMIN_TOKEN, else a random one)"
    )
    demo.add_argument(
        "--failover-timeout",
        type=float,
        default=10.0,
        help="seconds the master waits before taking over a failed edge (10)",
    )
    demo.set_defaults(func=_lazy("app.demo", "run_cli"))


def _add_ctl(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Options accepted before or after the command; SUPPRESS keeps a later default
    # from overwriting a value given earlier.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"the server (ENGINE_URL, default {DEFAULT_URL})",
    )
    common.add_argument(
        "--token", default=argparse.SUPPRESS, help="an API token (ENGINE_TOKEN; prefer that)"
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON"
    )
    common.add_argument(
        "--timeout",
        type=_seconds,
        default=argparse.SUPPRESS,
        metavar="S",
        help="seconds to wait for the server's answer (5; 20 for restore, takeover and "
        "rotate-secret)",
    )
    ctl = commands.add_parser(
        "ctl",
        parents=[common],
        help="operate a running server: status, events, restore, takeover, rotate-secret, "
        "panel-key",
        description="Operate a running server over its API. The server comes from "
        f"ENGINE_URL (default {DEFAULT_URL}) or --url, the token from ENGINE_TOKEN or "
        "--token. Errors are one line on stderr and a non-zero exit status.",
    )
    ctl.add_argument("--version", action="version", version=_version_text())
    ctl.set_defaults(func=_lazy("app.ctl", "run"))
    ctl_commands = ctl.add_subparsers(dest="ctl_command", required=True, metavar="COMMAND")
    ctl_commands.add_parser(
        "status",
        parents=[common],
        help="one line per location: controller, online, epoch, failover, next window",
    )
    events = ctl_commands.add_parser(
        "events", parents=[common], help="a location's control decisions, newest first"
    )
    events.add_argument("edge", metavar="EDGE", help="the edge location's id")
    events.add_argument("--limit", type=int, default=20, help="how many (20)")
    # Changes are confirmed on the terminal first; --yes confirms them in a script.
    confirm = argparse.ArgumentParser(add_help=False)
    confirm.add_argument(
        "--yes", "-y", action="store_true", help="do it without asking for a confirmation"
    )
    for name, text in (
        ("restore", "hand control back to the connected edge now"),
        ("takeover", "the master takes control of the location now"),
    ):
        command = ctl_commands.add_parser(name, parents=[common, confirm], help=text)
        command.add_argument("edge", metavar="EDGE", help="the edge location's id")
    rotate = ctl_commands.add_parser(
        "rotate-secret",
        parents=[common, confirm],
        help="issue a new shared secret for an edge (printed once)",
    )
    rotate.add_argument("edge", metavar="EDGE", help="the edge location's id")
    rotate.add_argument(
        "--grace",
        type=_grace,
        metavar="S",
        help="seconds the secrets valid now stay valid at most (server default: one day); "
        "0 revokes them now",
    )
    panel_key = ctl_commands.add_parser(
        "panel-key",
        parents=[common],
        help="issue a device key for a room's panel (printed once); list or revoke them",
    )
    panel_key.add_argument("system", metavar="SYSTEM", help="the room's system id")
    panel_key.add_argument("--name", help="what the key is for (default: panel)")
    chosen = panel_key.add_mutually_exclusive_group()
    chosen.add_argument("--list", action="store_true", help="list the room's keys (ids only)")
    chosen.add_argument("--revoke", metavar="KEY_ID", help="revoke the key with that id")


def _add_couchbase(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], load: bool
) -> None:
    couchbase = commands.add_parser("couchbase", help="Couchbase deployment tools (xdcr)")
    couchbase_commands = couchbase.add_subparsers(dest="couchbase_command", required=True)
    if load:
        from app.store import xdcr

        xdcr.add_cli(couchbase_commands)
    couchbase.set_defaults(func=lambda args: args.handler(args))


def build_parser(argv: list[str] | None = None, prog: str | None = None) -> argparse.ArgumentParser:
    """The command line; ``argv`` decides whether the Couchbase tools are loaded."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog=prog or program_name(sys.argv[0]),
        description="Engine HA: a building-automation control engine with master/edge "
        "high availability.",
    )
    parser.add_argument("--version", action="version", version=_version_text())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_demo(commands)
    _add_ctl(commands)
    _add_couchbase(commands, load=bool(argv) and argv[0] == "couchbase")
    openapi = commands.add_parser("openapi", help="regenerate openapi/openapi.json")
    openapi.add_argument("--check", action="store_true", help="fail if the file is stale")
    openapi.set_defaults(func=_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    # Servers log what they do; ctl's output is its answer, with problems on stderr.
    logging.basicConfig(
        level=logging.WARNING if args.command == "ctl" else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
