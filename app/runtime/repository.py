"""The driver repository: the git checkout of driver code a server loads from.

Git runs as a subprocess without a shell, one command at a time, with prompts
disabled (a pull needing credentials fails instead of hanging) and a timeout.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path, PurePosixPath

from app.errors import Conflict, InvalidField
from app.runtime.reports import RepositoryStatus

_AUTHOR = ("-c", "user.name=engine", "-c", "user.email=engine@localhost")
_NO_SIGNING = ("-c", "commit.gpgsign=false")
_SHA = re.compile(r"[0-9a-fA-F]{4,64}")
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}(?:[~^][0-9]{0,4})*")


class RepositoryError(Conflict):
    """A git operation failed; the detail carries git's own message."""


class DriverRepository:
    """The driver checkout at ``path``, seeded from the bundled ``seed`` folder."""

    def __init__(self, path: Path, seed: Path, *, timeout: float = 60.0) -> None:
        self.path = path
        self._seed = seed
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._head: str | None = None

    def head(self) -> str:
        """The commit checked out as of the last repository operation."""
        if self._head is None:
            raise RepositoryError(f"the driver repository {self.path} has not been prepared yet")
        return self._head

    async def ensure(self) -> str:
        """Make ``path`` a checkout (a copy of the seed, committed) unless it is one."""
        async with self._lock:
            if not (self.path / ".git").exists():
                await asyncio.to_thread(_copy_seed, self._seed, self.path)
                await self._git("init", "--quiet", "--initial-branch=main")
                await self._git("add", "--all")
                await self._git(
                    *_AUTHOR, *_NO_SIGNING, "commit", "--quiet", "--message", "Bundled drivers"
                )
            return await self._read_head()

    async def pull(self) -> str:
        """Fast-forward to the upstream of the current branch; returns the new HEAD."""
        async with self._lock:
            if not (await self._git("remote")).split():
                raise RepositoryError(
                    f"the driver repository {self.path} has no remote to pull from"
                )
            await self._git("pull", "--ff-only", "--quiet")
            return await self._read_head()

    async def reset(self, commit: str | None = None) -> str:
        """Check out ``commit`` (a sha or a ref; HEAD when None), discarding local edits."""
        async with self._lock:
            target = await self._resolve(commit or "HEAD")
            await self._git("reset", "--quiet", "--hard", target)
            return await self._read_head()

    async def status(self) -> RepositoryStatus:
        """Where the repository stands: its commit, its branch, whether it is dirty."""
        async with self._lock:
            commit = await self._read_head()
            code, branch, _ = await self._run("symbolic-ref", "--quiet", "--short", "HEAD")
            dirty = bool(await self._git("status", "--porcelain"))
            return {"commit": commit, "branch": branch if code == 0 else None, "dirty": dirty}

    async def write_files(self, files: dict[str, str]) -> dict[str, str | None]:
        """Write inline-edited files; every path is checked before any is written.

        Returns what the files held before (None: did not exist), for :meth:`restore`.
        """
        targets = {self._confine(name): content for name, content in files.items()}
        async with self._lock:
            previous = await asyncio.to_thread(_read_all, list(targets))
            await asyncio.to_thread(_write_all, targets)
        return {name: previous[self._confine(name)] for name in files}

    async def restore(self, previous: dict[str, str | None]) -> None:
        """Put files back as :meth:`write_files` found them (an edit that did not load)."""
        targets = {self._confine(name): content for name, content in previous.items()}
        async with self._lock:
            await asyncio.to_thread(_restore_all, targets)

    def _confine(self, name: str) -> Path:
        relative = PurePosixPath(name)
        if "\x00" in name:
            raise InvalidField("files", f"{name!r} must not contain a NUL character")
        if (
            not name
            or "\\" in name
            or relative.is_absolute()
            or ".." in relative.parts
            or ".git" in relative.parts
        ):
            raise InvalidField("files", f"{name!r} must be a relative path inside the repository")
        target = (self.path / relative).resolve()
        if not target.is_relative_to(self.path.resolve()):
            raise InvalidField("files", f"{name!r} leads outside the repository")
        return target

    async def _resolve(self, commit: str) -> str:
        if not (_SHA.fullmatch(commit) or (_REF.fullmatch(commit) and ".." not in commit)):
            raise InvalidField("commit", f"{commit!r} is neither a commit sha nor a ref")
        code, sha, _ = await self._run("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
        if code != 0:
            raise InvalidField("commit", f"unknown commit {commit!r}")
        return sha

    async def _read_head(self) -> str:
        self._head = await self._git("rev-parse", "HEAD")
        return self._head

    async def _git(self, *args: str) -> str:
        code, out, err = await self._run(*args)
        if code != 0:
            reason = err or out or f"exit status {code}"
            raise RepositoryError(f"git {' '.join(args)} failed: {reason}")
        return out

    async def _run(self, *args: str) -> tuple[int, str, str]:
        """Run git in the repository; returns its exit status, stdout and stderr, stripped."""
        try:
            process = await asyncio.create_subprocess_exec(
                "git",
                *args,
                cwd=self.path,
                env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            raise RepositoryError(f"cannot run git: {exc}") from exc
        try:
            async with asyncio.timeout(self._timeout):
                out, err = await process.communicate()
        except TimeoutError:
            raise RepositoryError(f"git {args[0]} timed out after {self._timeout:g} s") from None
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        code = await process.wait()
        return code, _text(out), _text(err)


def _text(output: bytes) -> str:
    return output.decode(errors="replace").strip()


def _copy_seed(seed: Path, path: Path) -> None:
    shutil.copytree(
        seed, path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )


def _read_all(targets: list[Path]) -> dict[Path, str | None]:
    return {t: t.read_text(encoding="utf-8") if t.is_file() else None for t in targets}


def _restore_all(targets: dict[Path, str | None]) -> None:
    for target, content in targets.items():
        if content is None:
            target.unlink(missing_ok=True)
        else:
            target.write_text(content, encoding="utf-8")


def _write_all(targets: dict[Path, str]) -> None:
    for target, content in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
