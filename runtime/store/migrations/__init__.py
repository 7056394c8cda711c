"""The store's Alembic migration environment: `env.py`, `script.py.mako`, `versions/`.

:mod:`runtime.store.schema` runs it programmatically (`freezer db upgrade`, `freezer serve
--upgrade-db`); nobody needs an `alembic.ini`. Everything the migrations need is in this
directory, so it moves with the store.
"""
