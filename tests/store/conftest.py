"""Fixtures of the store tests: the same suite runs on a SQLite file and on PostgreSQL.

PostgreSQL tests get a fresh schema each (dropped afterwards), so concurrent test runs on the
shared server never see each other's rows. Without a reachable server they are skipped.
`FREEZER_TEST_POSTGRES` overrides the server URL (default: the local test server).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.manifest import Cell, Manifest, Stage, WaitsOn
from runtime.store.store import Run, Store, User

PG_SERVER = os.environ.get("FREEZER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PG_UNREACHABLE = "PostgreSQL not reachable at 127.0.0.1:5432"


def postgres_answers() -> bool:
    """Whether the test PostgreSQL server answers now."""
    try:
        import psycopg

        with psycopg.connect(PG_SERVER, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_reachable() -> bool:
    """Whether the test PostgreSQL server answers (checked once per session)."""
    return postgres_answers()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_reachable: bool
) -> Iterator[str]:
    """A database URL nobody else uses: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'freezer.db'}"
        return
    if not postgres_reachable:
        pytest.skip(PG_UNREACHABLE)
    import psycopg

    schema = f"store_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        # plain postgresql:// on purpose: the store maps it to psycopg 3. No fsync per
        # commit (synchronous_commit=off): tests do not survive power failures anyway.
        options = f"-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"
        yield f"{PG_SERVER}?options={options}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def is_sqlite(db_url: str) -> bool:
    return db_url.startswith("sqlite")


@pytest.fixture
def sqlite_only(is_sqlite: bool) -> None:
    if not is_sqlite:
        pytest.skip("SQLite-specific behaviour")


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = await Store.open(db_url)
    try:
        yield store
    finally:
        await store.close()


def make_manifest(title: str = "Labeling", stages: int = 3) -> Manifest:
    """A small valid manifest with `stages` stages, collecting `threshold` in stage 1."""
    return Manifest(
        title=title,
        source_name="labeling.ipynb",
        source_sha256="0" * 64,
        freezer_version="0.1.0",
        created="2026-01-01T00:00:00+00:00",
        kernel_name="python3",
        kernel_language="python",
        stages=tuple(
            Stage(
                index=i,
                title=f"Step {i + 1}",
                cells=(Cell(id=f"c{i}", kind="code", source=f"x{i} = {i}"),),
                waits_on=(WaitsOn(name=f"w{i}", kind="widget", bound_in_cell=i),),
                collect=("threshold",) if i == 1 else (),
            )
            for i in range(stages)
        ),
    ).with_app_id()


@pytest.fixture
async def app(store: Store) -> Manifest:
    manifest = make_manifest()
    await store.ensure_app(manifest)
    return manifest


@pytest.fixture
async def user(store: Store) -> User:
    return await store.get_or_create_user("alice")


@pytest.fixture
def new_run(store: Store, app: Manifest, user: User) -> Callable[..., Awaitable[Run]]:
    """Factory: `await new_run(**params)` starts a run of `app` for `user`."""

    async def create(**params: Any) -> Run:
        return await store.create_run(app.app_id, user.id, 42, params)

    return create


async def wait_until_true(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Return once `predicate()` is true; fail the test after `timeout` seconds."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.002)

    try:
        await asyncio.wait_for(poll(), timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"condition not met within {timeout} s")


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    """`await wait_until(predicate, timeout=10.0)`: wait on a condition, never on a clock."""
    return wait_until_true


@pytest.fixture
def manifest_factory() -> Callable[..., Manifest]:
    """`manifest_factory(title=..., stages=...)` -> a valid manifest with its app_id."""
    return make_manifest
