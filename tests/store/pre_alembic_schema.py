"""The schema that Freezer created before its schema was versioned (frozen; never edit).

This is what `Base.metadata.create_all` emitted on SQLite and PostgreSQL before the store had
migrations: databases people made then have these tables and no `alembic_version`. The
migration tests build such a database from these statements and upgrade it.
"""

from __future__ import annotations

SQLITE = (
    """
CREATE TABLE apps (
    id VARCHAR(64) NOT NULL,
    title TEXT NOT NULL,
    manifest JSON NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id)
)
    """,
    """
CREATE TABLE users (
    id INTEGER NOT NULL,
    name VARCHAR(255) NOT NULL,
    token_hash VARCHAR(64),
    is_admin BOOLEAN NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (name),
    UNIQUE (token_hash)
)
    """,
    """
CREATE TABLE runs (
    id VARCHAR(32) NOT NULL,
    app_id VARCHAR(64) NOT NULL,
    user_id INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    stage INTEGER NOT NULL,
    seed BIGINT NOT NULL,
    params JSON NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    finished_at DATETIME,
    PRIMARY KEY (id),
    FOREIGN KEY(app_id) REFERENCES apps (id),
    FOREIGN KEY(user_id) REFERENCES users (id)
)
    """,
    """
CREATE INDEX ix_runs_app_created ON runs (app_id, created_at)
    """,
    """
CREATE INDEX ix_runs_user_created ON runs (user_id, created_at)
    """,
    """
CREATE TABLE events (
    run_id VARCHAR(32) NOT NULL,
    seq INTEGER NOT NULL,
    at DATETIME NOT NULL,
    kind VARCHAR(64) NOT NULL,
    ordinal INTEGER,
    payload JSON NOT NULL,
    buffers BLOB NOT NULL,
    PRIMARY KEY (run_id, seq),
    FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
)
    """,
    """
CREATE TABLE stages (
    run_id VARCHAR(32) NOT NULL,
    "index" INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    started_at DATETIME,
    finished_at DATETIME,
    snapshot JSON,
    error TEXT,
    traceback TEXT,
    PRIMARY KEY (run_id, "index"),
    FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
)
    """,
    """
CREATE TABLE results (
    run_id VARCHAR(32) NOT NULL,
    name VARCHAR(255) NOT NULL,
    value JSON NOT NULL,
    stage INTEGER,
    at DATETIME NOT NULL,
    PRIMARY KEY (run_id, name),
    FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
)
    """,
)

POSTGRESQL = (
    """
CREATE TABLE apps (
    id VARCHAR(64) NOT NULL,
    title TEXT NOT NULL,
    manifest JSON NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id)
)
    """,
    """
CREATE TABLE users (
    id SERIAL NOT NULL,
    name VARCHAR(255) NOT NULL,
    token_hash VARCHAR(64),
    is_admin BOOLEAN NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (name),
    UNIQUE (token_hash)
)
    """,
    """
CREATE TABLE runs (
    id VARCHAR(32) NOT NULL,
    app_id VARCHAR(64) NOT NULL,
    user_id INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    stage INTEGER NOT NULL,
    seed BIGINT NOT NULL,
    params JSON NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    finished_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (id),
    FOREIGN KEY(app_id) REFERENCES apps (id),
    FOREIGN KEY(user_id) REFERENCES users (id)
)
    """,
    """
CREATE INDEX ix_runs_app_created ON runs (app_id, created_at)
    """,
    """
CREATE INDEX ix_runs_user_created ON runs (user_id, created_at)
    """,
    """
CREATE TABLE events (
    run_id VARCHAR(32) NOT NULL,
    seq INTEGER NOT NULL,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    kind VARCHAR(64) NOT NULL,
    ordinal INTEGER,
    payload JSON NOT NULL,
    buffers BYTEA NOT NULL,
    PRIMARY KEY (run_id, seq),
    FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
)
    """,
    """
CREATE TABLE stages (
    run_id VARCHAR(32) NOT NULL,
    index INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE,
    finished_at TIMESTAMP WITH TIME ZONE,
    snapshot JSON,
    error TEXT,
    traceback TEXT,
    PRIMARY KEY (run_id, index),
    FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
)
    """,
    """
CREATE TABLE results (
    run_id VARCHAR(32) NOT NULL,
    name VARCHAR(255) NOT NULL,
    value JSON NOT NULL,
    stage INTEGER,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (run_id, name),
    FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
)
    """,
)
