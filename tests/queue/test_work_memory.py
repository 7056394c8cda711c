"""`WorkQueue` without a Freezer server (plain Jupyter, Voila): one person's queue in memory."""

from __future__ import annotations

import pytest

from runtime.kernel import WorkQueue, WorkQueueError


def test_in_memory_batches_come_in_order_and_skip_what_was_answered() -> None:
    queue = WorkQueue("faces", items=["a", "b", "c", "d", "e", "b"], batch=2, overlap=2)
    assert not queue.saved
    assert queue.claim() == ["a", "b"]
    assert queue.claim() == ["a", "b"]  # the unfinished batch again
    queue.submit({"a": "cat"})
    assert queue.claim() == ["b"]
    queue.skip(["b"])
    assert queue.claim() == ["c", "d"]
    queue.submit({"c": 1, "d": 2})
    assert queue.claim() == ["e"]
    queue.submit({"e": 3})
    assert queue.claim() == []


def test_bad_arguments_say_what_is_wrong() -> None:
    with pytest.raises(WorkQueueError, match=r"item \{'x': 1\} is a dict; items are ids"):
        WorkQueue("faces", items=[{"x": 1}])
    with pytest.raises(WorkQueueError, match="batch must be a whole number of at least 1"):
        WorkQueue("faces", items=[1], batch=0)
    with pytest.raises(WorkQueueError, match="submit\\(\\) takes a dict"):
        WorkQueue("faces", items=[1]).submit([1])  # type: ignore[arg-type]
