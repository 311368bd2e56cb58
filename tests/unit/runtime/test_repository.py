from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.errors import InvalidField
from app.runtime import DriverRepository, RepositoryError
from tests.unit.runtime.conftest import BUNDLED_DRIVERS

AUTHOR = ("-c", "user.name=upstream", "-c", "user.email=upstream@localhost")


async def git(cwd: Path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


async def commit_file(cwd: Path, name: str, content: str) -> str:
    (cwd / name).write_text(content)
    await git(cwd, "add", name)
    await git(cwd, *AUTHOR, "commit", "--quiet", "-m", f"edit {name}")
    return await git(cwd, "rev-parse", "HEAD")


@pytest.fixture
async def repository(tmp_path: Path) -> DriverRepository:
    repository = DriverRepository(tmp_path / "checkout", BUNDLED_DRIVERS, timeout=20)
    await repository.ensure()
    return repository


async def test_ensure_seeds_a_checkout_and_commits_it_as_the_engine(tmp_path: Path) -> None:
    repository = DriverRepository(tmp_path / "checkout", BUNDLED_DRIVERS)

    head = await repository.ensure()

    path = tmp_path / "checkout"
    assert (path / "generic" / "tcp_line.py").read_text() == (
        BUNDLED_DRIVERS / "generic" / "tcp_line.py"
    ).read_text()
    assert await git(path, "log", "-1", "--format=%an <%ae>") == "engine <engine@localhost>"
    assert head == repository.head() == await git(path, "rev-parse", "HEAD")
    assert await repository.status() == {"commit": head, "branch": "main", "dirty": False}


async def test_ensure_leaves_an_existing_checkout_alone(repository: DriverRepository) -> None:
    edited = repository.path / "generic" / "echo.py"
    edited.write_text("# local edit\n")

    head = await repository.ensure()

    assert head == repository.head()
    assert edited.read_text() == "# local edit\n"
    assert len((await git(repository.path, "log", "--format=%H")).split()) == 1


async def test_head_before_ensure_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="not been prepared"):
        DriverRepository(tmp_path / "checkout", BUNDLED_DRIVERS).head()


async def test_written_files_make_the_checkout_dirty_and_reset_discards_them(
    repository: DriverRepository,
) -> None:
    original = (repository.path / "generic" / "echo.py").read_text()

    await repository.write_files({"generic/echo.py": "# edited\n", "new/helper.py": "X = 1\n"})

    assert (repository.path / "new" / "helper.py").read_text() == "X = 1\n"
    assert (await repository.status())["dirty"] is True
    await repository.reset()
    assert (repository.path / "generic" / "echo.py").read_text() == original


@pytest.mark.parametrize(
    "name",
    ["../escape.py", "/tmp/abs.py", ".git/hooks/post-checkout", "a/../../b.py", "", "a\\b.py"],
)
async def test_write_files_refuses_paths_outside_the_repository(
    repository: DriverRepository, name: str
) -> None:
    with pytest.raises(InvalidField) as caught:
        await repository.write_files({"generic/fine.py": "X = 1\n", name: "evil"})

    assert caught.value.field == "files"
    assert repr(name) in caught.value.reason
    assert not (repository.path / "generic" / "fine.py").exists()  # nothing written


async def test_reset_checks_out_an_earlier_commit_by_sha(repository: DriverRepository) -> None:
    first = repository.head()
    second = await commit_file(repository.path, "notes.txt", "v2\n")

    assert await repository.reset(first) == first
    assert not (repository.path / "notes.txt").exists()
    assert await repository.reset(second[:12]) == second
    assert repository.head() == second


@pytest.mark.parametrize(
    "commit", ["--hard", "-h", "HEAD; rm -rf /", "$(touch pwned)", "main..other", "HEAD@{1}"]
)
async def test_reset_refuses_anything_but_a_sha_or_a_ref(
    repository: DriverRepository, commit: str
) -> None:
    with pytest.raises(InvalidField, match="neither a commit sha nor a ref") as caught:
        await repository.reset(commit)

    assert caught.value.field == "commit"
    assert not (repository.path / "pwned").exists()


async def test_reset_to_an_unknown_commit_is_refused(repository: DriverRepository) -> None:
    with pytest.raises(InvalidField, match="unknown commit"):
        await repository.reset("0123456789abcdef0123456789abcdef01234567")


async def test_pull_without_a_remote_says_so(repository: DriverRepository) -> None:
    with pytest.raises(RepositoryError, match="has no remote") as caught:
        await repository.pull()

    assert caught.value.status == 409


async def test_pull_fast_forwards_to_the_upstream(tmp_path: Path) -> None:
    upstream_work = DriverRepository(tmp_path / "work", BUNDLED_DRIVERS)
    await upstream_work.ensure()
    bare = tmp_path / "upstream.git"
    await git(tmp_path, "clone", "--quiet", "--bare", str(upstream_work.path), str(bare))
    await git(tmp_path, "clone", "--quiet", str(bare), "checkout")
    await git(upstream_work.path, "remote", "add", "origin", str(bare))
    repository = DriverRepository(tmp_path / "checkout", BUNDLED_DRIVERS)
    seeded = await repository.ensure()
    pushed = await commit_file(upstream_work.path, "generic/new_driver.py", "X = 2\n")
    await git(upstream_work.path, "push", "--quiet", "origin", "main")

    pulled = await repository.pull()

    assert seeded == upstream_work.head()
    assert pulled == pushed == repository.head()
    assert (repository.path / "generic" / "new_driver.py").read_text() == "X = 2\n"
    assert (await repository.status())["branch"] == "main"


async def test_a_pull_that_cannot_fast_forward_fails_with_gits_message(tmp_path: Path) -> None:
    upstream_work = DriverRepository(tmp_path / "work", BUNDLED_DRIVERS)
    await upstream_work.ensure()
    await git(tmp_path, "clone", "--quiet", str(upstream_work.path), "checkout")
    repository = DriverRepository(tmp_path / "checkout", BUNDLED_DRIVERS)
    await repository.ensure()
    await commit_file(upstream_work.path, "a.txt", "upstream\n")
    local = await commit_file(repository.path, "b.txt", "local\n")

    with pytest.raises(RepositoryError, match="git pull --ff-only --quiet failed"):
        await repository.pull()

    assert await git(repository.path, "rev-parse", "HEAD") == local
