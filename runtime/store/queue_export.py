"""What the admin and `freezer export APP --queue NAME` get of a work queue.

- :func:`queue_rows`: one row per (item, person, answer, time), skips included (`skipped`
  true, `answer` empty), in queue order then time;
- :func:`queue_report`: items done / claimed / waiting, per-labeler counts, agreement
  (`runtime.store.agreement`) and the items people disagree on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from runtime.store.agreement import agreement
from runtime.store.models import iso
from runtime.store.queue_store import QueueError
from runtime.store.store import Store

QUEUE_COLUMNS = ("item", "user", "answer", "skipped", "at", "run_id")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


async def check_queue(store: Store, name: str) -> None:
    """Raise QueueError naming the known queues when `name` is not one of them."""
    names = await store.queue_names()
    if name not in names:
        known = ", ".join(names) if names else "none yet"
        raise QueueError(f"there is no work queue named {name!r} (queues: {known})")


async def queue_rows(store: Store, name: str) -> list[dict[str, Any]]:
    """The export rows of a queue: item, user, answer, skipped, at (ISO 8601 UTC), run_id."""
    await check_queue(store, name)
    return [
        {"item": a.item, "user": a.user, "answer": a.answer, "skipped": a.skipped,
         "at": iso(a.at), "run_id": a.run_id}
        for a in await store.queue_answers(name)
    ]


def queue_rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV; answers that are not text are JSON; no cell starts a formula."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(QUEUE_COLUMNS)
    for row in rows:
        writer.writerow([cell(row[column]) for column in QUEUE_COLUMNS])
    return buffer.getvalue()


def cell(value: Any) -> str:
    """A CSV cell: text as it is (a leading formula character quoted away), else JSON."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "'" + text if text.startswith(FORMULA_START) else text


async def queue_report(store: Store, name: str) -> dict[str, Any]:
    """Counts, per-labeler figures, agreement and the disputed items of one queue."""
    await check_queue(store, name)
    counts = await store.queue_counts(name)
    given: dict[Any, list[Any]] = {}
    for answer in await store.queue_answers(name):  # in queue order, then time
        if not answer.skipped:
            given.setdefault(json.dumps(answer.item), []).append(answer.answer)
    result = agreement(given, counts.overlap)
    report = asdict(counts)
    report["agreement"] = {
        "method": result.method, "kappa": result.kappa, "observed": result.observed,
        "items": result.items,
        "disagreements": [
            {"item": json.loads(key), "answers": given[key]} for key in result.disagreements
        ],
    }
    return report
