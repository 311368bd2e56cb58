"""``pip install .`` (not editable) into a fresh virtual environment, then the demo.

The package must carry everything the demo needs (the simulated devices, the bundled
drivers): the environment sees neither the checkout nor its editable install. Only the
package's own files are copied for the build, as the container image does. Nothing is
downloaded: the package is built without isolation by this environment's setuptools,
and its dependencies are this environment's, named by a ``.pth`` line (which, unlike a
site directory, runs none of that directory's own ``.pth`` files, so the editable
install stays out).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from tests.support.demo import running_demo
from tests.support.engine import ROOT

pytestmark = pytest.mark.integration

CALL = {"module": "Display", "index": 1, "method": "send", "args": ["POWER ON"]}


def installed_environment(root: Path) -> Path:
    """A fresh virtual environment under ``root`` with the package installed; its python."""
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "app", source / "app", ignore=shutil.ignore_patterns("__pycache__"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_packages = Path(output(python, "import sysconfig; print(sysconfig.get_path('purelib'))"))
    (site_packages / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = ("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index")
    subprocess.run([python, *pip, "--ignore-installed", str(source)], check=True, cwd=root)
    installed = Path(output(python, "import app; print(app.__file__)"))
    assert installed.is_relative_to(site_packages), installed
    return python


def output(python: Path, code: str) -> str:
    """What ``code`` prints, run by ``python`` outside the checkout."""
    done = subprocess.run(
        [python, "-c", code], check=True, capture_output=True, text=True, cwd=python.parent
    )
    return done.stdout.strip()


async def test_an_installed_package_runs_the_demo_from_an_empty_folder(tmp_path: Path) -> None:
    python = await asyncio.to_thread(installed_environment, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    async with running_demo(Path("data/demo"), python=python, cwd=empty) as demo:
        master = (await demo.read_until(r"^\s+master\s+(http\S+)")).group(1)
        edge = (await demo.read_until(r"^\s+edge\s+(http\S+)")).group(1)
        names = await demo.exports()
        assert names["DEMO"] == str(empty / "data" / "demo")

        async with httpx.AsyncClient(timeout=10) as http:
            for server, node in ((master, "master"), (edge, f"edge:{names['EDGE']}")):
                health = await http.get(f"{server}/api/health")
                assert health.json() == {"status": "ok", "node": node}
            auth = {"Authorization": f"Bearer {names['T']}"}
            control = await http.get(f"{master}/api/edges/{names['EDGE']}/control", headers=auth)
            assert control.json()["controller"] == "edge", control.text
            answered = await http.post(
                f"{edge}/api/systems/{names['ROOM']}/exec", json=CALL, headers=auth
            )
            assert answered.json() == {"result": "POWER ON"}, answered.text

        demo.process.send_signal(signal.SIGINT)
        await demo.read_until(r"demo stopped", timeout=30)
        assert await asyncio.wait_for(demo.process.wait(), 10) == 0
