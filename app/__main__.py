"""Command line: ``python -m app serve|demo|openapi|couchbase xdcr``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from app import demo
from app.store import xdcr

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app
    from app.settings import load_settings

    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = load_settings(**overrides)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        timeout_graceful_shutdown=5,
        ws_ping_interval=settings.ping_interval_s,
        ws_ping_timeout=3 * settings.ping_interval_s,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run one server; the role comes from ENGINE_EDGE_ID")
    serve.add_argument("--host", help="interface to listen on (ENGINE_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (ENGINE_PORT)")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=_serve)

    demo.add_cli(commands)

    couchbase = commands.add_parser("couchbase", help="Couchbase deployment tools")
    couchbase_commands = couchbase.add_subparsers(dest="couchbase_command", required=True)
    xdcr.add_cli(couchbase_commands)
    couchbase.set_defaults(func=lambda args: args.handler(args))

    openapi = commands.add_parser("openapi", help="regenerate openapi/openapi.json")
    openapi.add_argument("--check", action="store_true", help="fail if the file is stale")
    openapi.set_defaults(func=_openapi)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
