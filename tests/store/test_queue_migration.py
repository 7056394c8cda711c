"""Revision 0003 (each queue item's counts) on a database at 0002 with work queues in use, on a
SQLite file and on PostgreSQL.

The rows are written with SQL into the tables the 0002 migration made (today's store refuses a
database at an older revision): items done, half done, skipped, with live and lapsed claims, in
two queues of different overlaps. After `upgrade_database` the counts equal what the rows say,
the models match the database, and the store goes on from there: the lapsed claims are swept,
their places handed out again, and a held claim is answered.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from runtime.store import schema
from runtime.store.database import database_url
from runtime.store.store import Store
from tests.store.test_queue_store import counts_against_rows
from tests.store.test_schema import (
    connect,
    fill_first_revision,
    migrate_from_empty,
    models_diff,
    version_rows,
)

pytestmark = pytest.mark.timeout(120)

AT, LIVE, LAPSED = "2026-01-01 00:00:00", "2999-01-01 00:00:00", "2001-01-01 00:00:00"
PEOPLE = ("bob", "cy", "dan")  # ada and her run1 come from fill_first_revision
ITEMS = {"faces": ["a", "b", "c", "d", "e"], "other": ["x"]}
ANSWERS = [  # queue, item, person, skipped, answer
    ("faces", "a", "ada", False, "cat"), ("faces", "a", "bob", False, "dog"),
    ("faces", "b", "ada", False, "cat"), ("faces", "b", "cy", True, None),
    ("faces", "c", "bob", True, None),
]
CLAIMS = [  # queue, item, person, expires_at
    ("faces", "b", "bob", LIVE), ("faces", "c", "cy", LAPSED),
    ("faces", "d", "ada", LIVE), ("faces", "d", "dan", LAPSED), ("other", "x", "ada", LIVE),
]
COUNTED = {  # (queue, key) -> answer_count, claim_count, free_places (overlap 2, and 1)
    ("faces", '"a"'): (2, 0, 0), ("faces", '"b"'): (1, 1, 0), ("faces", '"c"'): (0, 1, 1),
    ("faces", '"d"'): (0, 2, 0), ("faces", '"e"'): (0, 0, 2), ("other", '"x"'): (0, 1, 0),
}


def run_of(person: str) -> str:
    return "run1" if person == "ada" else f"run-{person}"


def fill_revision_0002(url: str) -> None:
    """A first-revision run (ada's), three more people with a run each, and two queues."""
    fill_first_revision(url)
    engine = connect(url)
    user = "(SELECT id FROM users WHERE name = :person)"
    with engine.begin() as connection:
        app_id = connection.execute(text("SELECT id FROM apps")).scalar_one()
        for person in PEOPLE:
            connection.execute(text(
                "INSERT INTO users (name, token_hash, is_admin, created_at) "
                "VALUES (:person, NULL, false, :at)"), {"person": person, "at": AT})
            connection.execute(text(
                f"INSERT INTO runs VALUES (:run, :app, {user}, 'active', 0, 1, '{{}}', :at, "
                ":at, NULL)"), {"run": run_of(person), "app": app_id, "person": person, "at": AT})
        for name, overlap in (("faces", 2), ("other", 1)):
            connection.execute(text("INSERT INTO queues VALUES (:name, 2, :overlap, 600.0, :at)"),
                               {"name": name, "overlap": overlap, "at": AT})
            for position, item in enumerate(ITEMS[name]):
                connection.execute(text(
                    "INSERT INTO queue_items VALUES (:name, :key, :position, :item, :at)"),
                    {"name": name, "key": f'"{item}"', "position": position,
                     "item": f'"{item}"', "at": AT})
        for name, item, person, skipped, answer in ANSWERS:
            connection.execute(text(
                f"INSERT INTO queue_answers VALUES (:name, :key, {user}, :run, :skipped, "
                ":answer, :at)"),
                {"name": name, "key": f'"{item}"', "person": person, "run": run_of(person),
                 "skipped": skipped, "answer": None if answer is None else f'"{answer}"',
                 "at": AT})
        for name, item, person, expires in CLAIMS:
            connection.execute(text(
                f"INSERT INTO queue_claims VALUES (:name, :key, {user}, :run, :at, :expires)"),
                {"name": name, "key": f'"{item}"', "person": person, "run": run_of(person),
                 "at": AT, "expires": expires})
    engine.dispose()


def kept_counts(url: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    engine = connect(url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT queue, key, answer_count, claim_count, free_places FROM queue_items"
        )).all()
    engine.dispose()
    return {(queue, key): tuple(counts) for queue, key, *counts in rows}


async def test_a_database_at_0002_with_queues_in_use_gains_their_counts(db_url: str) -> None:
    migrate_from_empty(db_url, "0002")
    fill_revision_0002(db_url)
    with pytest.raises(schema.SchemaBehindError, match="is at schema revision 0002, older"):
        await Store.open(db_url)
    lines: list[str] = []
    schema.upgrade_database(database_url(db_url), lines.append)
    assert lines == [
        "0002 -> 0003: Keep each work-queue item's counts: answer_count, claim_count, "
        "free_places.",
        f"now at schema revision {schema.head_revision()}",
    ]
    assert version_rows(db_url) == [schema.head_revision()]
    assert models_diff(db_url) == []
    assert kept_counts(db_url) == COUNTED
    assert counts_against_rows(db_url) == []

    store = await Store.open(db_url)
    try:
        # cy's lapsed claim on c and dan's on d are swept: c has both places again, d one
        # (ada holds the other); cy skipped b, and a is done
        assert await store.queue_claim("faces", run_of("cy")) == ["c", "d"]
        assert await store.queue_claim("faces", run_of("dan")) == ["c", "e"]
        answered = await store.queue_answer("faces", run_of("bob"), [("b", "cow")])
        assert (answered.saved, answered.refused) == (["b"], [])
        assert await store.queue_claim("faces", run_of("ada")) == ["d"]  # her own, still live
        counts = await store.queue_counts("faces")
        assert (counts.done, counts.claimed, counts.waiting) == (2, 3, 0)
        assert await store.queue_claim("other", run_of("bob")) == []  # ada holds x
    finally:
        await store.close()
    assert counts_against_rows(db_url) == []
