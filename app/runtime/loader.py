"""Loading driver classes from the driver repository, afresh on every load.

Each load imports the file under a new package name (``_engine_drivers_<n>``)
rooted at the repository, so an edited file is always read again, two generations
of a driver can run side by side during a reload, and a driver may import helpers
from its repository with relative imports (``from .common import checksum``,
``from ..shared import codes``). Source is compiled directly, never through
``__pycache__``: the repository stays clean, and an edit made within the same
second as the previous load is never hidden by stale bytecode.

The generation's modules leave ``sys.modules`` once the class is loaded, so
drivers must import at module level, not inside functions.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import CodeType, ModuleType

from app.errors import InvalidField
from app.runtime.driver import Driver

_PREFIX = "_engine_drivers_"
_generations = itertools.count(1)


class DriverLoadError(InvalidField):
    """The driver code cannot be loaded: the detail says why, with file and line."""

    def __init__(self, file: str, reason: str) -> None:
        super().__init__("file", f"{file}: {reason}")


def load_driver_class(repo_path: Path, file: str, class_name: str) -> type[Driver]:
    """Import ``file`` (relative to ``repo_path``) afresh and return its ``class_name``."""
    source = _source_path(repo_path, file)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    root = f"{_PREFIX}{next(_generations)}"
    _FINDER.roots[root] = repo_path.resolve()
    module_name = ".".join((root, *Path(file).with_suffix("").parts))
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        raise DriverLoadError(file, f"line {exc.lineno}: SyntaxError: {exc.msg}") from exc
    except Exception as exc:
        raise DriverLoadError(file, _describe_failure(exc, source)) from exc
    finally:
        _forget(root)
    return _driver_class(module, file, class_name)


def _source_path(repo_path: Path, file: str) -> Path:
    relative = Path(file)
    if relative.is_absolute() or ".." in relative.parts or relative.suffix != ".py":
        raise DriverLoadError(file, "must be a relative path to a .py file inside the repository")
    if not all(part.isidentifier() for part in relative.with_suffix("").parts):
        raise DriverLoadError(file, "every part of the path must be a Python identifier")
    source = (repo_path / relative).resolve()
    if not source.is_relative_to(repo_path.resolve()):
        raise DriverLoadError(file, "leads outside the repository")
    if not source.is_file():
        raise DriverLoadError(file, f"no such file in the driver repository {repo_path}")
    return source


def _driver_class(module: ModuleType, file: str, class_name: str) -> type[Driver]:
    found = getattr(module, class_name, None)
    if found is None:
        raise DriverLoadError(file, f"defines no class {class_name!r}")
    if not (isinstance(found, type) and issubclass(found, Driver)):
        raise DriverLoadError(file, f"{class_name} is not a subclass of app.runtime.Driver")
    return found


def _describe_failure(exc: Exception, source: Path) -> str:
    """``line N: Type: message``, the line being the deepest one in the driver's file."""
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename) == source
    ]
    where = f"line {lines[-1]}: " if lines and lines[-1] is not None else ""
    return f"{where}{type(exc).__name__}: {exc}"


def _forget(root: str) -> None:
    """Drop a generation from ``sys.modules``; its classes keep what they reference."""
    _FINDER.roots.pop(root, None)
    for name in [name for name in sys.modules if name == root or name.startswith(f"{root}.")]:
        del sys.modules[name]


class _FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles the source every time, neither reading nor writing ``__pycache__``."""

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


class _RepositoryFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of the generations being loaded, under their repository."""

    def __init__(self) -> None:
        self.roots: dict[str, Path] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        root, _, rest = fullname.partition(".")
        base = self.roots.get(root)
        if base is None:
            return None
        location = base.joinpath(*rest.split(".")) if rest else base
        if location.is_dir():
            return self._package(fullname, location)
        source = location.with_suffix(".py")
        if not source.is_file():
            return None
        loader = _FreshSourceLoader(fullname, str(source))
        return importlib.util.spec_from_file_location(fullname, source, loader=loader)

    @staticmethod
    def _package(fullname: str, location: Path) -> importlib.machinery.ModuleSpec | None:
        init = location / "__init__.py"
        if init.is_file():
            loader = _FreshSourceLoader(fullname, str(init))
            return importlib.util.spec_from_file_location(
                fullname, init, loader=loader, submodule_search_locations=[str(location)]
            )
        spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
        spec.submodule_search_locations = [str(location)]
        return spec


_FINDER = _RepositoryFinder()
