"""The command line: plain-text help under the right name, commands imported lazily."""

from __future__ import annotations

import subprocess
import sys

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
