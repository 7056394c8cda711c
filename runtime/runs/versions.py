"""The app directory a run's kernel starts in: the served one, or that of the run's version.

A run keeps the app version it started on. When the server is serving a later build of the same
notebook, a run of an earlier one gets a kernel started in a directory of its own version,
written from the manifest the database keeps, with the served app's `files/` linked in.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runtime.errors import RuntimeAppError
from runtime.manifest import FILES_DIR, MANIFEST_NAME, Manifest, dump

if TYPE_CHECKING:
    from runtime.store.store import Run, Store


async def app_dir_of(
    run: Run, manifest: Manifest, app_dir: Path, versions_dir: Path, store: Store
) -> Path:
    """`app_dir` for a run of the served `manifest`; else its version's directory under
    `versions_dir` (written on first use)."""
    if run.app_id == manifest.app_id:
        return app_dir
    version_dir = versions_dir / run.app_id
    if not (version_dir / MANIFEST_NAME).is_file():
        stored = await store.get_manifest(run.app_id)
        if stored is None:
            raise RuntimeAppError(f"run {run.id}: its app version {run.app_id} is not stored")
        version_dir.mkdir(parents=True, exist_ok=True)
        dump(stored, version_dir)
        files = app_dir / FILES_DIR
        if files.is_dir() and not (version_dir / FILES_DIR).exists():
            (version_dir / FILES_DIR).symlink_to(files, target_is_directory=True)
    return version_dir
