"""Fixtures of the admin area (the data itself is built in `admin_seed.py`)."""

from __future__ import annotations

import asyncio

import pytest
from admin_seed import SeededApp, make_manifest, seed, write_app


@pytest.fixture(scope="module")
def seeded_app(tmp_path_factory: pytest.TempPathFactory) -> SeededApp:
    """An app directory with a database of four runs (shared by the tests of a module)."""
    app_dir = tmp_path_factory.mktemp("app")
    manifest = make_manifest()
    write_app(app_dir, manifest)
    db_url = f"sqlite:///{app_dir / 'freezer.db'}"
    run_ids = asyncio.run(seed(db_url, manifest))
    return SeededApp(app_dir, db_url, manifest, run_ids)
