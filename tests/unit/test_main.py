"""The command line: plain-text help under the right name, commands imported lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.__main__ import build_parser, program_name
from tests.support.engine import ROOT

HEAVY = ("fastapi", "uvicorn", "httpx", "app.demo", "app.ctl", "app.main", "app.store.xdcr")


def test_the_usage_names_how_the_program_was_run() -> None:
    assert program_name("/repo/.venv/bin/engine") == "engine"
    assert program_name("/repo/app/__main__.py") == "python -m app"
    assert build_parser([], prog="engine").format_usage().startswith("usage: engine ")


@pytest.mark.parametrize(
    "argv",
    [[], ["serve"], ["demo"], ["ctl"], ["ctl", "status"], ["ctl", "rotate-secret"], ["couchbase"]],
)
def test_help_texts_are_plain_text(argv: list[str]) -> None:
    parser = build_parser(argv)
    for words in (argv, [*argv, "xdcr"] if argv == ["couchbase"] else argv):
        help_text = _help(parser, words)
        assert "``" not in help_text, help_text
        assert ":class:" not in help_text


def _help(parser: object, words: list[str]) -> str:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    current = parser
    for word in words:
        [subparsers] = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        current = subparsers.choices[word]
    return current.format_help()


def test_ctl_options_go_before_or_after_the_command() -> None:
    parser = build_parser(["ctl"])
    before = parser.parse_args(["ctl", "--url", "http://a", "--json", "status"])
    after = parser.parse_args(["ctl", "status", "--url", "http://a", "--json"])
    assert (before.url, before.json) == (after.url, after.json) == ("http://a", True)
    rotate = parser.parse_args(["ctl", "rotate-secret", "edge-1", "--grace", "60"])
    assert (rotate.edge, rotate.grace) == ("edge-1", 60.0)


def test_building_the_command_line_imports_no_command() -> None:
    code = (
        "import sys\n"
        "from app.__main__ import build_parser\n"
        "build_parser(['ctl', 'status']).parse_args(['ctl', 'status'])\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr


def test_version_and_timeouts_and_log_levels_are_checked_by_the_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.version import version

    for argv in (["--version"], ["ctl", "--version"]):
        with pytest.raises(SystemExit) as done:
            build_parser(argv).parse_args(argv)
        assert done.value.code == 0
        assert capsys.readouterr().out == f"engine {version()}\n"
    parser = build_parser(["ctl"])
    assert parser.parse_args(["ctl", "status", "--timeout", "2.5"]).timeout == 2.5
    assert parser.parse_args(["ctl", "takeover", "e", "--yes"]).yes is True
    assert parser.parse_args(["ctl", "rotate-secret", "e", "--grace", "0"]).grace == 0
    for bad in (
        ["ctl", "status", "--timeout", "0"],
        ["ctl", "status", "--timeout", "soon"],
        ["ctl", "rotate-secret", "e", "--grace", "-1"],
        ["serve", "--log-level", "bogus"],
    ):
        with pytest.raises(SystemExit) as refused:
            build_parser(bad).parse_args(bad)
        assert refused.value.code == 2
        [line] = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
        assert "Traceback" not in line
    serve = build_parser(["serve"]).parse_args(["serve", "--log-level", "debug"])
    assert serve.log_level == "debug"


def test_serve_names_a_bad_setting_and_a_busy_port_in_one_line(tmp_path: Path) -> None:
    import os
    import socket

    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGINE_")}
    env.update(ENGINE_DRIVERS_PATH=str(tmp_path / "drivers"))
    bad = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        cwd=ROOT,
        env={**env, "ENGINE_PING_INTERVAL_S": "often"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "error: bad setting ENGINE_PING_INTERVAL_S (got 'often'): Input should be a valid "
        "number, unable to parse string as a number"
    ]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        refused = subprocess.run(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**env, "ENGINE_DATABASE_URL": f"sqlite:///{tmp_path / 'engine.db'}"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use (another server or "
        "demo?); choose another with --port or ENGINE_PORT"
    ]
    missing = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        cwd=ROOT,
        env={**env, "ENGINE_TLS_CERT": "/nowhere/cert.pem", "ENGINE_TLS_KEY": "/nowhere/k"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == ["error: ENGINE_TLS_CERT: no such file /nowhere/cert.pem"]
