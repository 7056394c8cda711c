"""A go-back in the store (SQLite and PostgreSQL): the `rewound` event and the rows set back
in one transaction, and the export's final pass with the earlier ones in `history`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from runtime.store.export_format import flatten_row
from runtime.store.store import NewEvent, Run, Store


async def test_a_rewind_sets_the_rows_back_and_the_export_keeps_every_pass(
    store: Store, new_run: Callable[..., Awaitable[Run]]
) -> None:
    run = await new_run()
    reports = [
        {"event": "stage_started", "stage": 0}, {"event": "stage_ready", "stage": 0},
        {"event": "stage_finished", "stage": 0, "snapshot": {"person": "Alan"}},
        {"event": "stage_started", "stage": 1},
        {"event": "collected", "stage": 1, "name": "early", "value": 1},
        {"event": "stage_ready", "stage": 1},
        {"event": "stage_finished", "stage": 1, "snapshot": {"threshold": 0.2}},
        {"event": "stage_started", "stage": 2},
        {"event": "collected", "stage": 2, "name": "labels", "value": ["same"]},
        {"event": "stage_ready", "stage": 2},
        {"event": "finished"},
    ]
    await store.append_events([NewEvent(run.id, "comm_msg", 0, {"method": "update"})])
    for report in reports:
        await store.record_runner_event(run.id, report)
    finished_0 = [e.seq for e in await store.events(run.id, kinds=["stage_finished"])][0]

    seq = await store.record_rewind(run.id, {"stage": 1, "cut": finished_0 + 4,
                                             "from_stage": 2})
    assert [e.kind for e in await store.events(run.id, after=seq - 1)] == ["rewound"]
    assert seq == (await store.append_events([NewEvent(run.id, "comm_msg", 0, {})]))[0] - 1
    again = await store.get_run(run.id)
    assert again is not None and (again.stage, again.status, again.finished_at) == (
        1, "active", None)
    stages = {row.index: (row.status, row.snapshot) for row in await store.stages(run.id)}
    assert stages == {0: ("finished", {"person": "Alan"}), 1: ("ready", None)}
    assert {r.name: r.value for r in await store.results(run.id)} == {"early": 1}

    for report in [{"event": "stage_finished", "stage": 1, "snapshot": {"threshold": 0.3}},
                   {"event": "stage_started", "stage": 2},
                   {"event": "collected", "stage": 2, "name": "labels", "value": ["other"]},
                   {"event": "stage_ready", "stage": 2}, {"event": "finished"}]:
        await store.record_runner_event(run.id, report)
    row = next(r for r in await store.export_rows() if r["run_id"] == run.id)
    assert row["snapshots"] == {"0": {"person": "Alan"}, "1": {"threshold": 0.3}}
    assert row["results"] == {"early": 1, "labels": ["other"]}
    assert row["passes"] == 2
    first, final = row["history"]
    assert first["snapshots"] == {"0": {"person": "Alan"}, "1": {"threshold": 0.2}}
    assert first["results"] == {"early": 1, "labels": ["same"]}
    assert first["went_back"]["stage"] == 1 and first["went_back"]["from_stage"] == 2
    assert (final["back_to"], final["reached"], final["went_back"]) == (1, 2, None)
    assert final["snapshots"] == {"1": {"threshold": 0.3}}
    flat = flatten_row(row)
    assert flat["passes"] == 2 and "history" not in flat  # the CSV leaves the history out
