"""The engine's version, as installed; read by ``--version`` and ``engine_build_info``."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    """The installed package's version; ``unknown`` when run from a bare source tree."""
    try:
        return metadata.version("engine-ha")
    except metadata.PackageNotFoundError:
        return "unknown"
