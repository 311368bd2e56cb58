"""A Python client generated from the committed OpenAPI document, as its users make one.

``openapi-python-client`` (pinned in pyproject's test extra) writes the package once per
document and generator version: it is kept, with what the generator printed, under
``.cache/openapi-client/<hash>/`` (gitignored), so a run whose document did not change
imports it without generating again.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

from app.__main__ import OPENAPI_PATH

GENERATOR = "openapi-python-client"
CACHE = OPENAPI_PATH.parent.parent / ".cache" / "openapi-client"
PACKAGE = "engine_client"
#: No formatting after generating (ruff): the code runs the same, sooner.
CONFIG = "post_hooks: []\n"


@dataclass(frozen=True)
class GeneratedClient:
    """The generated package, and what the generator printed while writing it."""

    package: ModuleType
    output: str

    def operation(self, tag: str, operation: str) -> ModuleType:
        """The module of one operation: ``operation("edges", "update_edge")``."""
        return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}")

    def model(self, name: str) -> Any:
        """A generated model class: ``model("EdgePatch")``."""
        return getattr(importlib.import_module(f"{PACKAGE}.models"), name)


def generated_client() -> GeneratedClient:
    """The client of the committed document, generated now or taken from the cache."""
    document = OPENAPI_PATH.read_bytes()
    key = hashlib.sha256(document + version(GENERATOR).encode()).hexdigest()[:20]
    target = CACHE / key
    if not (target / "output.txt").is_file():
        _generate(target)
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    package = importlib.import_module(PACKAGE)
    assert Path(str(package.__file__)).is_relative_to(target), "another engine_client was found"
    return GeneratedClient(package, (target / "output.txt").read_text())


def _generate(target: Path) -> None:
    """Generate into a fresh folder, then move it into place whole."""
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=CACHE, prefix="staging-"))
    try:
        config = staging / "config.yaml"
        config.write_text(CONFIG)
        executable = Path(sys.executable).parent / GENERATOR
        result = subprocess.run(
            [
                str(executable),
                "generate",
                "--path",
                str(OPENAPI_PATH),
                "--output-path",
                str(staging / PACKAGE),
                "--meta",
                "none",
                "--config",
                str(config),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        printed = result.stdout + result.stderr
        if result.returncode != 0:
            raise AssertionError(f"{GENERATOR} failed ({result.returncode}):\n{printed}")
        (staging / "output.txt").write_text(printed)
        try:
            staging.rename(target)
        except OSError:  # generated meanwhile by another run: that one is as good
            if not (target / "output.txt").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
