"""Plan -> :class:`runtime.manifest.Manifest` -> the app directory, written atomically.

The app directory is built complete in a temporary directory beside the target and renamed into
place, so a failure at any step leaves no partial app behind. An existing app is replaced, but
what the server keeps beside it moves across to the new build: its database files
(``freezer.db*``: the runs of an app being served), the secret that signs its identity cookies
(``.freezer_cookie_secret``), its config file (``freezer_config.py`` / ``.json``) and the runs'
working directories: :data:`runtime.manifest.KEPT_GLOBS`. A directory that is not a Freezer app
is only replaced with ``force=True``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from freezer import __version__
from freezer.errors import OutputError
from freezer.includes import Include, resolve_includes
from freezer.notebook import SourceNotebook, kernelspec
from freezer.plan import Plan
from freezer.requirements import REQUIREMENTS_NAME, Requirements
from runtime import manifest as mf

# Never copied by --include: editor and interpreter leftovers.
_INCLUDE_IGNORE = (".ipynb_checkpoints", "__pycache__", ".git")


def emit_app(
    source: SourceNotebook,
    plan: Plan,
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    include: Sequence[str | os.PathLike[str]] = (),
    force: bool = False,
    requirements: Requirements | None = None,
) -> mf.Manifest:
    """Write the app directory for `source` planned as `plan`; return its manifest.

    `include` paths (as given on the command line) are copied under ``files/`` keeping their
    layout relative to the notebook's directory, which is where the notebook reads them from.
    """
    target = Path(out_dir).absolute()
    manifest = build_manifest(source, plan, title=title)
    includes = resolve_includes(include, source.directory)
    check_target(target, source, force=force)
    created = _make_parent(target.parent)
    try:
        with _building_dir(target) as tmp:
            mf.dump(manifest, tmp)
            write_app_notebook(manifest, tmp / mf.NOTEBOOK_NAME)
            if requirements is not None:
                (tmp / REQUIREMENTS_NAME).write_text(requirements.text(), encoding="utf-8")
            copy_includes(includes, tmp / mf.FILES_DIR, skip=target.resolve())
            _apply_umask(tmp)
            swap_into_place(tmp, target)
    except OSError as exc:
        _remove_empty(created)
        where = exc.filename or target
        raise OutputError(
            f"{where}: cannot write the app directory: {exc.strerror or exc}"
        ) from None
    except BaseException:
        _remove_empty(created)
        raise
    return manifest


def default_title(source: SourceNotebook) -> str:
    """`metadata.title`, else the first heading before the first code cell, else the file name."""
    title = source.nb.metadata.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    for cell in source.nb.cells:
        if cell.cell_type == "code":
            break
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    heading = str(line).lstrip("#").strip()
                    if heading:
                        return heading
    return source.stem.replace("_", " ").replace("-", " ").strip() or source.stem


def build_manifest(source: SourceNotebook, plan: Plan, *, title: str | None = None) -> mf.Manifest:
    """The manifest of the app: stages, waits, parameters, collect and warm from the plan."""
    stages = tuple(
        mf.Stage(
            index=stage.index,
            title=stage.title,
            cells=tuple(
                mf.Cell(id=c.id, kind=c.kind, source=c.source, tags=tuple(c.tags))
                for c in stage.cells
            ),
            waits_on=() if stage.ends_with is None else tuple(stage.ends_with.waits_on),
            collect=tuple(stage.collect),
            warm=bool(stage.warm),
            gate=None if stage.ends_with is None else stage.ends_with.gate,
            warm_cells=mf.leading_warm_cells(stage.cells) if stage.index == 0 else None,
        )
        for stage in plan.stages
    )
    manifest = mf.Manifest(
        title=title if title is not None else default_title(source),
        source_name=source.name,
        source_sha256=source.sha256,
        freezer_version=__version__,
        created=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        kernel_name=source.kernel_name,
        kernel_language=source.kernel_language,
        stages=stages,
        parameters=tuple(plan.parameters),
    )
    return manifest.with_app_id()


def app_notebook(manifest: mf.Manifest) -> dict[str, Any]:
    """`app.ipynb` (nbformat 4.5): a title and the one bootstrap cell; plain `voila` serves it."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": kernelspec(manifest.kernel_name, manifest.kernel_language),
            "language_info": {"name": manifest.kernel_language},
            "freezer": {"app_id": manifest.app_id},
        },
        "cells": [
            {"cell_type": "markdown", "id": "title", "metadata": {},
             "source": f"# {manifest.title}"},
            {"cell_type": "code", "id": "bootstrap", "metadata": {}, "execution_count": None,
             "outputs": [], "source": mf.BOOTSTRAP_SOURCE},
        ],
    }


def write_app_notebook(manifest: mf.Manifest, path: Path) -> None:
    """Write :func:`app_notebook` to `path`."""
    text = json.dumps(app_notebook(manifest), indent=1, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def copy_includes(includes: Sequence[Include], files_dir: Path, *, skip: Path) -> None:
    """Copy included files and directories under `files_dir`, never the app itself."""
    if not includes:
        return
    files_dir.mkdir()
    building = f".{skip.name}."

    def ignore(directory: str, names: list[str]) -> list[str]:
        here = Path(directory)
        return [
            name for name in names
            if name in _INCLUDE_IGNORE or name.startswith(building) or here / name == skip
        ]

    for item in includes:
        destination = files_dir / item.relative
        if item.source.is_dir():
            shutil.copytree(item.source, destination, ignore=ignore, dirs_exist_ok=True)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item.source, destination)


def check_target(target: Path, source: SourceNotebook, *, force: bool) -> None:
    """Refuse targets that must not be replaced; raise :class:`OutputError`."""
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: exists and is not a directory; choose another -o")
    real = target.resolve()
    protected = [source.path.resolve(), Path.cwd().resolve()]
    if any(p == real or real in p.parents for p in protected):
        raise OutputError(
            f"{target}: would replace the notebook's or the current directory; choose another -o"
        )
    if not target.is_dir() or force or (target / mf.MANIFEST_NAME).is_file():
        return
    if any(target.iterdir()):
        raise OutputError(
            f"{target}: exists and is not a Freezer app (no {mf.MANIFEST_NAME}); choose another "
            "-o, or pass --force to replace it"
        )


def _make_parent(parent: Path) -> list[Path]:
    """Create the missing ancestors of the app directory; return them, deepest first."""
    missing = []
    for directory in [parent, *parent.parents]:
        if directory.exists():
            break
        missing.append(directory)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(missing)
        raise OutputError(
            f"{parent}: cannot create the output directory: {exc.strerror or exc}"
        ) from None
    return missing


def _remove_empty(directories: Iterable[Path]) -> None:
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


@contextmanager
def _building_dir(target: Path) -> Iterator[Path]:
    """A temporary directory beside `target`, removed on exit unless it was renamed away."""
    try:
        path = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    except OSError as exc:
        raise OutputError(
            f"{target.parent}: cannot write the app directory here: {exc.strerror or exc}"
        ) from None
    try:
        yield path
    finally:
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)


def _apply_umask(app_dir: Path) -> None:
    """Give the app directory and its top files the modes a plain mkdir/open would have.

    Temporary files and directories are private (0600/0700); a served app is read by others.
    """
    umask = _current_umask()
    app_dir.chmod(0o777 & ~umask)
    for path in app_dir.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~umask)


def _current_umask() -> int:
    # Linux reports it without changing it; os.umask() sets it process-wide for a moment,
    # which races with other threads (`freezer preview` rebuilds inside a running server).
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def swap_into_place(built: Path, target: Path) -> None:
    """Rename `built` to `target`; an existing `target` is replaced, its `mf.KEPT_GLOBS` kept."""
    if not target.exists():
        os.rename(built, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rename(target, old / target.name)
    previous = old / target.name
    moved: list[str] = []
    try:
        kept_paths = {path for pattern in mf.KEPT_GLOBS for path in previous.glob(pattern)}
        for kept in sorted(kept_paths):
            os.rename(kept, built / kept.name)
            moved.append(kept.name)
        os.rename(built, target)
    except BaseException:
        for name in moved:
            os.rename(built / name, previous / name)
        os.rename(previous, target)
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
