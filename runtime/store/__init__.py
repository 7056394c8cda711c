"""The database: models, transactions, runner events as rows, exports, Alembic migrations."""
