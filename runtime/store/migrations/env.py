"""Alembic's environment for the store: migrates the connection given by :mod:`.schema`.

Online only, on one connection that is already inside the caller's transaction: the caller
decides when it commits (so a failed upgrade leaves the database as it was). Batch mode is on
for SQLite, whose ALTER TABLE cannot change or drop columns: Alembic copies such a table.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from runtime.store.models import Base

config = context.config
connection: Any = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the store's migrations run through runtime.store.schema (`freezer db upgrade APP`), "
        "which passes them a connection"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
    on_version_apply=config.attributes.get("on_version_apply", ()),
)
with context.begin_transaction():
    context.run_migrations()
