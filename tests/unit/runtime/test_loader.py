from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app.runtime import Driver, DriverLoadError, load_driver_class
from tests.unit.runtime.conftest import DriverWriter

VERSION = """
from app.runtime import Driver


class Versioned(Driver):
    def version(self) -> int:
        return {version}
"""


def _version(driver_class: type[Driver]) -> int:
    return int(driver_class.version(None))  # type: ignore[attr-defined]


def test_loads_the_named_driver_class(repo_path: Path) -> None:
    driver_class = load_driver_class(repo_path, "generic/echo.py", "Echo")

    assert issubclass(driver_class, Driver)
    assert driver_class.__name__ == "Echo"


def test_every_load_reads_the_file_afresh(repo_path: Path, write_driver: DriverWriter) -> None:
    write_driver("versioned.py", VERSION.format(version=1))
    first = load_driver_class(repo_path, "versioned.py", "Versioned")
    write_driver("versioned.py", VERSION.format(version=2))  # same size, same second
    second = load_driver_class(repo_path, "versioned.py", "Versioned")

    assert (_version(first), _version(second)) == (1, 2)
    assert first is not second


def test_a_driver_imports_sibling_helpers_afresh(
    repo_path: Path, write_driver: DriverWriter
) -> None:
    write_driver("shared/codes.py", "POWER = 'PWR'\n")
    write_driver(
        "vendor/display.py",
        """
        from app.runtime import Driver

        from ..shared import codes
        from .protocol import frame


        class Display(Driver):
            def command(self) -> str:
                return frame(codes.POWER)
        """,
    )
    write_driver("vendor/protocol.py", "def frame(code: str) -> str:\n    return f'<{code}>'\n")
    first = load_driver_class(repo_path, "vendor/display.py", "Display")
    write_driver("shared/codes.py", "POWER = 'PON'\n")
    second = load_driver_class(repo_path, "vendor/display.py", "Display")

    assert first.command(None) == "<PWR>"  # type: ignore[attr-defined]
    assert second.command(None) == "<PON>"  # type: ignore[attr-defined]


def test_loading_leaves_nothing_behind(repo_path: Path) -> None:
    before = set(sys.modules)

    load_driver_class(repo_path, "generic/tcp_line.py", "TcpLine")

    assert not {name for name in set(sys.modules) - before if name.startswith("_engine")}
    assert not list(repo_path.rglob("__pycache__"))


def test_a_syntax_error_names_the_file_and_line(
    repo_path: Path, write_driver: DriverWriter
) -> None:
    write_driver("broken.py", "from app.runtime import Driver\n\nclass Broken(Driver)\n    pass\n")

    with pytest.raises(DriverLoadError) as caught:
        load_driver_class(repo_path, "broken.py", "Broken")

    assert caught.value.status == 422
    assert caught.value.field == "file"
    assert "broken.py: line 3: SyntaxError" in caught.value.detail


def test_an_exception_while_importing_names_its_line(
    repo_path: Path, write_driver: DriverWriter
) -> None:
    write_driver("raises.py", "import math\n\nLIMIT = math.sqrt(-1)\n")

    with pytest.raises(DriverLoadError, match=r"raises.py: line 3: ValueError: math domain error"):
        load_driver_class(repo_path, "raises.py", "Anything")


def test_a_missing_import_is_a_load_error(repo_path: Path, write_driver: DriverWriter) -> None:
    write_driver("needs.py", "import no_such_vendor_sdk\n")

    with pytest.raises(DriverLoadError, match="ModuleNotFoundError: No module named"):
        load_driver_class(repo_path, "needs.py", "Needs")


def test_a_missing_class_is_a_load_error(repo_path: Path) -> None:
    with pytest.raises(DriverLoadError, match="defines no class 'Projector'"):
        load_driver_class(repo_path, "generic/echo.py", "Projector")


def test_a_class_that_is_not_a_driver_is_a_load_error(
    repo_path: Path, write_driver: DriverWriter
) -> None:
    write_driver("plain.py", "class Plain:\n    pass\n")

    with pytest.raises(DriverLoadError, match="not a subclass"):
        load_driver_class(repo_path, "plain.py", "Plain")


@pytest.mark.parametrize(
    "file",
    [
        "../outside.py",
        "/etc/passwd.py",
        "generic/echo.txt",
        "generic/no_such_file.py",
        "my-file.py",
    ],
)
def test_files_outside_the_repository_or_missing_are_refused(repo_path: Path, file: str) -> None:
    (repo_path.parent / "outside.py").write_text("class Outside: pass\n")

    with pytest.raises(DriverLoadError, match=file.replace(".", r"\.")):
        load_driver_class(repo_path, file, "Anything")


def test_a_symlink_leading_out_of_the_repository_is_refused(repo_path: Path) -> None:
    (repo_path.parent / "outside.py").write_text("class Outside: pass\n")
    (repo_path / "link.py").symlink_to(repo_path.parent / "outside.py")

    with pytest.raises(DriverLoadError, match="outside the repository"):
        load_driver_class(repo_path, "link.py", "Outside")
