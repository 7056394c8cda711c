"""Each run's own working directory, seeded from the app's `files/` and kept with the run.

Layout under the run files root (`--run-files-dir`, default `runs/` beside the SQLite database,
which is `APP/runs/` for the default database; a rebuild of the app keeps it):

```
ROOT/<run_id>/            the working directory of the run's kernel (what the notebook wrote)
ROOT/.kernels/<name>/     a started kernel's directory while it waits in the pool for a run
ROOT/.trash/<name>/       a directory being deleted
```

Every kernel starts in a directory of its own, a copy of the seed (the app's `files/`), before
its warm cells run, so they see the seed files wherever the kernel ends up. When the kernel is
bound to a run, :meth:`RunFiles.bind` renames its directory to `ROOT/<run_id>` (the process's
cwd follows the rename; the configure code also chdirs there). A run that already has a
directory is being rebuilt by replay: the old directory is replaced by the fresh copy, so a
replay starts from the pristine seed and rebuilds the same files.

Why a copy: a hard link shares the inode, and a notebook's `open(path, "w")` truncates that inode
in place, which would change the seed and every other run's file (root ignores read-only modes,
so chmod does not prevent it). An overlay mount is cheap but needs CAP_SYS_ADMIN. The copy runs
in a worker thread, and for pool kernels before anyone waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from runtime.errors import RuntimeAppError
from runtime.manifest import RUNS_DIR

if TYPE_CHECKING:
    from runtime.store.store import Run, Store

KERNELS_DIR = ".kernels"
TRASH_DIR = ".trash"
"""Environment variable naming a kernel's own working directory (`runner.prepare` chdirs)."""
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
DAY = 86400.0
SWEEP_INTERVAL = 3600.0
"""Seconds between two looks for run directories past retention."""


class RunFilesError(RuntimeAppError):
    """A run's directory cannot be made, found or read."""


@dataclass(frozen=True)
class RunFile:
    """One file in a run's directory: its path relative to the directory, size, change time."""

    path: str
    size: int
    modified: float


def run_files_root(app_dir: Path, db_url: str, configured: str = "") -> Path:
    """Where an app's run directories are: `configured`, else `runs/` beside the SQLite database
    file, else `APP/runs/` (a database that is not a file)."""
    if configured:
        return Path(configured).expanduser().resolve()
    prefix = "sqlite:///"
    if db_url.startswith(prefix) and not db_url.startswith(prefix + ":memory:"):
        return Path(db_url[len(prefix):].split("?", 1)[0]).resolve().parent / RUNS_DIR
    return app_dir.resolve() / RUNS_DIR


def chdir_code(directory: Path) -> str:
    """Kernel code that makes `directory` the working directory (a JSON literal, never code)."""
    return f"import os as _freezer_os\n_freezer_os.chdir({json.dumps(str(directory))})\n"


def kernel_tag() -> str:
    """The prefix of this server process's kernel directories: host and process id."""
    return f"{socket.gethostname()}-{os.getpid()}-"


class RunFiles:
    """The run directories of one app: seeding kernels' directories, binding them to runs,
    listing, reading and pruning them."""

    def __init__(self, root: Path, seed: Path) -> None:
        self.root = root
        self.seed = seed

    # --- kernels -----------------------------------------------------------------------------

    def start(self) -> None:
        """Make the root and remove kernel directories left by this host's dead servers."""
        (self.root / KERNELS_DIR).mkdir(parents=True, exist_ok=True)
        host = socket.gethostname() + "-"
        for entry in (self.root / KERNELS_DIR).iterdir():
            pid_text = entry.name[len(host):].split("-", 1)[0]
            if entry.name.startswith(host) and pid_text.isdigit() and not _alive(int(pid_text)):
                self._remove(entry)
        self._empty_trash()

    async def new_kernel_dir(self, seed: Path | None = None) -> Path:
        """A fresh copy of the seed (the app's `files/`, or `seed`) for a kernel about to start."""
        directory = self.root / KERNELS_DIR / (kernel_tag() + secrets.token_hex(6))
        source = (seed or self.seed).resolve()
        try:
            if source.is_dir():
                await asyncio.to_thread(shutil.copytree, source, directory, symlinks=True)
            else:
                directory.mkdir(parents=True)
        except OSError as exc:
            self._remove(directory)
            raise RunFilesError(f"cannot seed a run directory in {directory}: {exc}") from exc
        return directory

    def bind(self, kernel_dir: Path, run_id: str) -> Path:
        """Make `kernel_dir` the run's directory; an existing one (replay) is replaced."""
        target = self.run_dir(run_id)
        if target.exists():
            self._remove(target)
        try:
            os.rename(kernel_dir, target)
        except OSError as exc:
            raise RunFilesError(f"run {run_id}: cannot make {target} its directory: {exc}") from exc
        return target

    def discard(self, kernel_dir: Path | None) -> None:
        """Remove the directory of a kernel that ends without having been bound to a run (a
        run's directory is never removed here)."""
        if kernel_dir is not None and kernel_dir.parent == self.root / KERNELS_DIR:
            self._remove(kernel_dir)

    # --- runs --------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        """Where the run's files are (whether or not it has any yet)."""
        if not RUN_ID.fullmatch(run_id):
            raise RunFilesError(f"{run_id!r} is not a run id")
        return self.root / run_id

    def run_ids(self) -> list[str]:
        """The runs that have a directory."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and RUN_ID.fullmatch(p.name)
        )

    def files(self, run_id: str) -> list[RunFile]:
        """Every regular file of the run's directory, by path (empty when it has none)."""
        root = self.run_dir(run_id)
        found = []
        for path in _walk(root):
            with contextlib.suppress(OSError):
                stat = path.stat()
                found.append(RunFile(path.relative_to(root).as_posix(), stat.st_size,
                                     stat.st_mtime))
        return sorted(found, key=lambda f: f.path)

    def file_path(self, run_id: str, relative: str) -> Path | None:
        """The run's file at `relative` (a URL path), or None: missing, a directory, or outside
        the run's directory (`..`, absolute paths, symlinks that lead out)."""
        parts = PurePosixPath(relative).parts
        if not parts or relative.startswith("/") or any(p in ("..", ".") for p in parts):
            return None
        if "\\" in relative or "\0" in relative:
            return None
        root = self.run_dir(run_id).resolve()
        path = (root / Path(*parts)).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    def zip_bytes(self, run_id: str) -> bytes:
        """The run's files as a zip archive (paths relative to its directory)."""
        buffer = io.BytesIO()
        root = self.run_dir(run_id)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for item in self.files(run_id):
                with contextlib.suppress(OSError):
                    archive.write(root / item.path, item.path)
        return buffer.getvalue()

    def export(self, run_ids: Iterable[str], destination: Path) -> int:
        """Copy the directories of `run_ids` to `destination/<run_id>/`; returns how many."""
        copied = 0
        for run_id in run_ids:
            source = self.run_dir(run_id)
            if source.is_dir():
                shutil.copytree(source, destination / run_id, symlinks=True, dirs_exist_ok=True)
                copied += 1
        return copied

    def remove(self, run_id: str) -> bool:
        """Delete the run's directory; returns whether it had one."""
        target = self.run_dir(run_id)
        if not target.exists():
            return False
        self._remove(target)
        return True

    # --- removing ----------------------------------------------------------------------------

    def _remove(self, path: Path) -> None:
        """Rename `path` into the trash, then delete it (a half-deleted directory is never
        visible under its own name)."""
        trash = self.root / TRASH_DIR
        trash.mkdir(parents=True, exist_ok=True)
        doomed = trash / f"{path.name}-{secrets.token_hex(4)}"
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        except OSError:
            doomed = path
        shutil.rmtree(doomed, ignore_errors=True)

    def _empty_trash(self) -> None:
        trash = self.root / TRASH_DIR
        if trash.is_dir():
            for entry in trash.iterdir():
                shutil.rmtree(entry, ignore_errors=True)


def expired(
    status: str, updated_at: float, retention_days: float, now: float | None = None
) -> bool:
    """Whether a run's files are past retention: abandoned, and untouched for `retention_days`
    (0: never)."""
    if status != "abandoned" or retention_days <= 0:
        return False
    return (now if now is not None else time.time()) - updated_at >= retention_days * DAY


async def prune(store: Store, run_files: RunFiles, retention_days: float | None) -> list[str]:
    """Remove the directories of abandoned runs (untouched for `retention_days`; None: any
    age) and, when `retention_days` is None, of directories whose run is not in the database.
    Returns the run ids whose files were removed."""
    runs = {run.id: run for run in await store.list_runs()}
    removed = []
    for run_id in run_files.run_ids():
        run: Run | None = runs.get(run_id)
        if run is None:
            doomed = retention_days is None
        elif retention_days is None:
            doomed = run.status == "abandoned"
        else:
            doomed = expired(run.status, run.updated_at.timestamp(), retention_days)
        if doomed and await asyncio.to_thread(run_files.remove, run_id):
            removed.append(run_id)
    return removed


async def sweep_forever(
    store: Store, run_files: RunFiles, retention_days: float, log: logging.Logger,
    interval: float = SWEEP_INTERVAL,
) -> None:
    """Remove expired run directories now and every `interval` seconds (the server's task)."""
    while True:
        try:
            removed = await prune(store, run_files, retention_days)
            if removed:
                log.info("removed the files of %d abandoned runs past retention (%g days)",
                         len(removed), retention_days)
        except Exception:
            log.exception("could not remove expired run files; trying again later")
        await asyncio.sleep(interval)


def _walk(root: Path) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                yield path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
