"""The work queue's transactions (runtime.store.queue_store) on a SQLite file and on PostgreSQL.

Claims are atomic: many stores (one engine and worker thread each, as separate server processes
have) claiming at once never give an item more than `overlap` live claims, nor one person an
item twice; checked from the database's own rows.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from runtime.manifest import Manifest
from runtime.store.database import database_url
from runtime.store.queue_store import QueueError
from runtime.store.store import Run, Store

pytestmark = pytest.mark.timeout(120)


async def runs_of(store: Store, app: Manifest, *names: str) -> list[Run]:
    """One new run for each person named."""
    runs = []
    for name in names:
        user = await store.get_or_create_user(name)
        runs.append(await store.create_run(app.app_id, user.id, 1, {}))
    return runs


async def test_two_people_get_disjoint_batches_with_overlap_one(
    store: Store, app: Manifest
) -> None:
    assert await store.queue_open("faces", list(range(10)), batch=4, overlap=1) == 10
    ada, bob = await runs_of(store, app, "ada", "bob")
    first = await store.queue_claim("faces", ada.id)
    second = await store.queue_claim("faces", bob.id)
    assert first == [0, 1, 2, 3] and second == [4, 5, 6, 7]
    # a run's own live claim comes back first (reload, another tab, a replay)
    assert await store.queue_claim("faces", ada.id) == first
    counts = await store.queue_counts("faces")
    assert (counts.items, counts.done, counts.claimed, counts.waiting) == (10, 0, 8, 2)


async def test_overlap_hands_an_item_to_that_many_people_and_never_twice_to_one(
    store: Store, app: Manifest
) -> None:
    await store.queue_open("faces", ["a", "b", "c"], batch=2, overlap=2)
    ada, bob, cy = await runs_of(store, app, "ada", "bob", "cy")
    assert await store.queue_claim("faces", ada.id) == ["a", "b"]
    assert await store.queue_claim("faces", bob.id) == ["a", "b"]
    assert await store.queue_claim("faces", cy.id) == ["c"]  # a and b are full
    await store.queue_answer("faces", ada.id, [("a", "cat"), ("b", "dog")])
    # ada's next batch never repeats what she answered, nor an item two people hold
    assert await store.queue_claim("faces", ada.id) == ["c"]
    ada_again = (await runs_of(store, app, "ada"))[0]  # another run of the same person
    assert await store.queue_claim("faces", ada_again.id) == []
    await store.queue_answer("faces", bob.id, [("a", "cat"), ("b", "cat")])
    counts = await store.queue_counts("faces")
    assert (counts.done, counts.claimed, counts.waiting) == (2, 1, 0)
    assert counts.labelers["ada"] == {"answers": 2, "skips": 0, "claimed": 1}
    assert counts.labelers["bob"] == {"answers": 2, "skips": 0, "claimed": 0}


async def test_a_skip_frees_the_item_for_others_but_not_for_the_skipper(
    store: Store, app: Manifest
) -> None:
    await store.queue_open("faces", ["a", "b"], batch=1, overlap=1)
    ada, bob = await runs_of(store, app, "ada", "bob")
    assert await store.queue_claim("faces", ada.id) == ["a"]
    await store.queue_answer("faces", ada.id, [("a", None)], skipped=True)
    assert await store.queue_claim("faces", ada.id) == ["b"]
    assert await store.queue_claim("faces", bob.id) == ["a"]
    counts = await store.queue_counts("faces")
    assert counts.done == 0 and counts.labelers["ada"]["skips"] == 1


async def test_a_lapsed_lease_puts_its_items_back_and_start_over_ends_claims(
    db_url: str, store: Store, app: Manifest
) -> None:
    await store.queue_open("faces", ["a", "b"], batch=2, overlap=1)
    ada, bob, cy = await runs_of(store, app, "ada", "bob", "cy")
    assert await store.queue_claim("faces", ada.id, lease=0) == ["a", "b"]  # lapses at once
    assert await store.queue_claim("faces", bob.id) == ["a", "b"]
    assert await store.queue_renew([bob.id]) == 2
    await store.set_run_status(bob.id, "abandoned")  # start over
    assert counts_against_rows(db_url) == []  # the places bob held are free again
    assert await store.queue_claim("faces", cy.id) == ["a", "b"]
    assert counts_against_rows(db_url) == []


async def test_a_new_build_adds_items_and_drops_none(store: Store, app: Manifest) -> None:
    await store.queue_open("faces", ["a", "b"], batch=5, overlap=1)
    (ada,) = await runs_of(store, app, "ada")
    await store.queue_claim("faces", ada.id)
    await store.queue_answer("faces", ada.id, [("a", 1)])
    assert await store.queue_open("faces", ["c", "b", "c"], batch=5, overlap=1) == 1
    counts = await store.queue_counts("faces")
    assert counts.items == 3 and counts.done == 1
    assert [(a.item, a.user, a.answer) for a in await store.queue_answers("faces")] == [
        ("a", "ada", 1)
    ]


async def test_bad_items_and_unknown_queues_are_refused(store: Store, app: Manifest) -> None:
    with pytest.raises(QueueError, match=r"queue item \[1\] is a list: items are ids"):
        await store.queue_open("faces", [[1]], batch=1, overlap=1)
    with pytest.raises(QueueError, match="no work queue named 'nope'"):
        await store.queue_counts("nope")
    await store.queue_open("faces", [1], batch=1, overlap=1)
    (ada,) = await runs_of(store, app, "ada")
    with pytest.raises(QueueError, match="queue 'faces' has no item 2"):
        await store.queue_answer("faces", ada.id, [(2, "x")])


def live_claims_per_item(url: str) -> tuple[int, int]:
    """From the database itself: the most live claims any item has, and the claims in all."""
    engine = create_engine(database_url(url))
    with engine.connect() as connection:
        most = connection.execute(text(
            "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) AS n FROM queue_claims "
            "GROUP BY queue, key) AS per_item"
        )).scalar_one()
        total = connection.execute(text("SELECT COUNT(*) FROM queue_claims")).scalar_one()
    engine.dispose()
    return int(most), int(total)


async def test_concurrent_claimers_on_many_stores_never_exceed_the_overlap(
    db_url: str, store: Store, app: Manifest
) -> None:
    items, batch, overlap, people = 30, 5, 2, 16
    await store.queue_open("faces", list(range(items)), batch=batch, overlap=overlap)
    runs = await runs_of(store, app, *(f"p{i}" for i in range(people)))
    others = [await Store.open(db_url) for _ in range(8)]  # as other server processes
    try:
        async def claim(index: int, run: Run) -> list[Any]:
            return await others[index % len(others)].queue_claim("faces", run.id)

        batches = await asyncio.gather(*(claim(i, run) for i, run in enumerate(runs)))
    finally:
        for other in others:
            await other.close()
    # 16 people * 5 = 80 claims wanted, 30 items * 2 = 60 places: the places run out
    assert sum(len(b) for b in batches) == items * overlap
    for got in batches:
        assert len(set(got)) == len(got)
    most, total = live_claims_per_item(db_url)
    assert most == overlap and total == items * overlap
    handed: dict[Any, int] = {}
    for got in batches:
        for item in got:
            handed[item] = handed.get(item, 0) + 1
    assert max(handed.values()) <= overlap
    assert counts_against_rows(db_url) == []


def counts_against_rows(url: str) -> list[tuple[Any, ...]]:
    """Items whose kept counts differ from their rows: (key, kept answer/claim/free, counted)."""
    engine = create_engine(database_url(url))
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT i.key, i.answer_count, i.claim_count, i.free_places, q.overlap, "
            "(SELECT COUNT(*) FROM queue_answers a WHERE a.queue = i.queue AND a.key = i.key "
            " AND NOT a.skipped), "
            "(SELECT COUNT(*) FROM queue_claims c WHERE c.queue = i.queue AND c.key = i.key) "
            "FROM queue_items i JOIN queues q ON q.name = i.queue"
        )).all()
    engine.dispose()
    return [
        (key, (answers, claims, free), (counted_answers, counted_claims,
                                        overlap - counted_answers - counted_claims))
        for key, answers, claims, free, overlap, counted_answers, counted_claims in rows
        if (answers, claims, free) != (counted_answers, counted_claims,
                                       overlap - counted_answers - counted_claims)
    ]


async def test_a_late_submit_after_the_lease_lapsed_is_refused(
    db_url: str, store: Store, app: Manifest
) -> None:
    await store.queue_open("faces", ["a", "b", "c"], batch=2, overlap=2)
    ada, bob, cy = await runs_of(store, app, "ada", "bob", "cy")
    assert await store.queue_claim("faces", ada.id, lease=0) == ["a", "b"]  # lapses at once
    # ada's lease lapsed: bob and cy take a, and answer it
    assert await store.queue_claim("faces", bob.id) == ["a", "b"]
    assert await store.queue_claim("faces", cy.id) == ["a", "b"]
    await store.queue_answer("faces", bob.id, [("a", "cat"), ("b", "cat")])
    await store.queue_answer("faces", cy.id, [("a", "dog")])
    # ada comes back and submits what she labelled: none of it is hers any more
    late = await store.queue_answer("faces", ada.id, [("a", "cow"), ("b", "cow")])
    answers = await store.queue_answers("faces")
    assert [(a.item, a.user, a.answer) for a in answers] == [
        ("a", "bob", "cat"), ("a", "cy", "dog"), ("b", "bob", "cat"),
    ]  # a has exactly its overlap of answers; b keeps its place for cy, who holds it
    assert (late.saved, late.refused) == ([], ["a", "b"])
    counts = await store.queue_counts("faces")
    assert (counts.done, counts.claimed, counts.waiting) == (1, 1, 1)
    assert "ada" not in counts.labelers
    assert counts_against_rows(db_url) == []
    # a submit mixing a live claim with a lapsed one saves the live one
    assert await store.queue_claim("faces", ada.id, lease=0) == ["c"]
    assert await store.queue_claim("faces", ada.id) == ["c"]  # lapsed: claimed anew
    mixed = await store.queue_answer("faces", ada.id, [("c", "cow"), ("b", "cow")])
    assert (mixed.saved, mixed.refused) == (["c"], ["b"])
    assert counts_against_rows(db_url) == []


async def test_a_resubmission_by_the_same_run_replaces_its_answer(
    db_url: str, store: Store, app: Manifest
) -> None:
    await store.queue_open("faces", ["a", "b", "c"], batch=3, overlap=1)
    ada, bob = await runs_of(store, app, "ada", "bob")
    assert await store.queue_claim("faces", ada.id) == ["a", "b", "c"]
    first = await store.queue_answer("faces", ada.id, [("a", "cat"), ("b", "dog")])
    await store.queue_answer("faces", ada.id, [("c", None)], skipped=True)
    assert (first.saved, first.refused) == (["a", "b"], [])
    # ada goes back to the labelling stage: her run submits the same items again
    again = await store.queue_answer("faces", ada.id, [("a", "cow"), ("b", "dog")])
    assert (again.saved, again.refused) == (["a", "b"], [])
    answers = await store.queue_answers("faces")
    assert [(a.item, a.user, a.answer, a.skipped) for a in answers] == [
        ("a", "ada", "cow", False), ("b", "ada", "dog", False), ("c", "ada", None, True),
    ]  # replaced: one row per item and person
    counts = await store.queue_counts("faces")
    assert (counts.done, counts.labelers["ada"]) == (2, {"answers": 2, "skips": 1, "claimed": 0})
    assert await store.queue_claim("faces", bob.id) == ["c"]  # ada skipped it
    assert counts_against_rows(db_url) == []
    # going back, ada answers the item she skipped: bob holds its only place now
    late = await store.queue_answer("faces", ada.id, [("c", "cat")])
    assert (late.saved, late.refused) == ([], ["c"])
    # ... and turns an answer into a skip: its place goes back to the queue
    await store.queue_answer("faces", bob.id, [("c", None)], skipped=True)
    await store.queue_answer("faces", ada.id, [("b", None)], skipped=True)
    assert await store.queue_claim("faces", bob.id) == ["b"]
    assert (await store.queue_answer("faces", ada.id, [("c", "cat")])).saved == ["c"]
    # another run of ada's (she started over) cannot overwrite what her first run answered
    (ada_again,) = await runs_of(store, app, "ada")
    other = await store.queue_answer("faces", ada_again.id, [("a", "owl")])
    assert (other.saved, other.refused) == ([], ["a"])
    assert [(a.item, a.answer) for a in await store.queue_answers("faces") if a.user == "ada"] == [
        ("a", "cow"), ("b", None), ("c", "cat"),
    ]
    assert counts_against_rows(db_url) == []


async def test_a_queue_gaining_many_items_has_them_counted_by_the_planner(
    db_url: str, is_sqlite: bool, store: Store
) -> None:
    if is_sqlite:
        pytest.skip("PostgreSQL's planner statistics")

    def planner_rows() -> float:
        engine = create_engine(database_url(db_url))
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT reltuples FROM pg_class WHERE oid = 'queue_items'::regclass"
            )).scalar_one()
        engine.dispose()
        return float(rows)

    await store.queue_open("few", list(range(10)), batch=1, overlap=1)
    assert planner_rows() < 10  # not analyzed: the planner guesses (-1: never)
    await store.queue_open("faces", list(range(300)), batch=1, overlap=1)
    assert planner_rows() == 310
