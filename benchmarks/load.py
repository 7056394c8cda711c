"""Load: N simulated people at once, one action every 2 s each, plain Voila vs Freezer.

Each person opens the app (a new run on Freezer's server), waits for the first stage, then every
`--interval` seconds moves the current stage's slider and waits for the label its callback sets
(one action; its round trip is measured); every `--next-every` actions they click Next (on plain
Voila, where every stage is already on the page, they move on to the next stage's slider). People
start spread over `--ramp` seconds. The servers run one after the other, never at once.

Reported per server: actions sent and acknowledged (the label arrived), errors, round trip
p50/p95/p99, page open p50/p95, server CPU (share of one core, process tree) and memory (RSS of
the server and its kernels). On Freezer's server, lost events are the slider updates a person sent
that its run's journal lacks (read from the database after the run).

    .venv/bin/python benchmarks/load.py [--people 100] [--duration 600] [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common import (
    ClientError,
    PageSession,
    Person,
    Target,
    build_for,
    environment,
    label_text,
    ms,
    options,
    parser,
    percentile,
    plot_samples,
    print_table,
    ratio,
    slider_description,
    stage_ready,
    summarize,
    targets,
    tree_cpu_seconds,
    tree_rss_bytes,
    workspace,
    write_json,
)

ACTION_TIMEOUT = 30.0
OPEN_TIMEOUT = 300.0


@dataclass
class LoadStats:
    """What the people of one server saw."""

    sent: int = 0
    acknowledged: int = 0
    nexts: int = 0
    round_trips: list[float] = field(default_factory=list)
    next_seconds: list[float] = field(default_factory=list)
    open_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    updates_by_run: dict[str, int] = field(default_factory=dict)  # Freezer run id -> updates sent
    samples: list[dict[str, float]] = field(default_factory=list)  # server CPU and memory


@dataclass
class Plan:
    people: int
    duration: float
    interval: float
    next_every: int
    ramp: float
    stages: int


def run_id_of(page: PageSession) -> str | None:
    """The run a Freezer page belongs to (`.../run/<id>`)."""
    parts = urlsplit(page.page.url).path.rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == "run" else None


def enabled_next(page: PageSession) -> list[str]:
    """The Next buttons the runner has enabled (it offers one once the stage has run)."""
    return [
        model_id
        for model_id in page.find_all(model_name="ButtonModel", description="Next")
        if not page.widgets[model_id].get("disabled")
    ]


async def click_next(page: PageSession, stage: int) -> None:
    """Click Freezer's enabled Next button and wait for the next stage's widgets.

    The stage's widgets show while its cells still run; Next is offered (enabled) only when
    they are done, so wait for it as a person would.
    """
    with contextlib.suppress(ClientError):
        await page.wait_for(lambda p: bool(enabled_next(p)), ACTION_TIMEOUT, "an enabled Next")
    buttons = enabled_next(page)
    if not buttons:
        shown = page.find_all(model_name="ButtonModel")
        states = [
            (page.widgets[m].get("description"), bool(page.widgets[m].get("disabled")))
            for m in shown
        ]
        raise ClientError(f"no enabled Next button on stage {stage} (buttons: {states})")
    await page.click(buttons[-1])
    await page.wait_for(stage_ready(stage + 1), OPEN_TIMEOUT, f"stage {stage + 1}")


async def act(page: PageSession, stage: int, value: int) -> tuple[float, str]:
    """Move stage `stage`'s slider to `value`; seconds until its label shows it, and msg_id."""
    slider = page.find(description=slider_description(stage))
    label = label_text(stage, value)
    sent: list[str] = []

    async def move() -> None:
        sent.append(await page.set_value(slider, value))

    seconds = await page.round_trip(
        move, until=lambda p: bool(p.find_all(value=label)), timeout=ACTION_TIMEOUT
    )
    return seconds, sent[0]


async def simulate_person(
    target: Target, index: int, plan: Plan, stop_at: float, stats: LoadStats
) -> None:
    """One person: open the app, then act every `interval` seconds until `stop_at`."""
    assert target.server is not None
    rng = random.Random(index)
    await asyncio.sleep(plan.ramp * index / max(plan.people, 1))
    async with Person(target.server.base_url) as person:
        try:
            page = await target.open_page(person, index)
            await page.wait_for(stage_ready(0), OPEN_TIMEOUT, "the first stage")
        except ClientError as error:
            stats.errors.append(f"open: {str(error).splitlines()[0]}")
            return
        stats.open_seconds.append(time.perf_counter() - page.started)
        run_id = run_id_of(page)
        stage, actions, value = 0, 0, 50
        next_at = time.monotonic() + rng.uniform(0, plan.interval)
        try:
            while True:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += plan.interval
                if time.monotonic() >= stop_at:
                    break
                if actions and actions % plan.next_every == 0 and stage + 1 < plan.stages:
                    started = time.perf_counter()
                    if target.kind == "freezer":
                        await click_next(page, stage)
                        stats.next_seconds.append(time.perf_counter() - started)
                    stage += 1
                    stats.nexts += 1
                    continue
                value = (value + rng.randint(1, 999)) % 1000
                stats.sent += 1
                if run_id is not None:
                    stats.updates_by_run[run_id] = stats.updates_by_run.get(run_id, 0) + 1
                actions += 1
                seconds, _ = await act(page, stage, value)
                stats.acknowledged += 1
                stats.round_trips.append(seconds)
        except ClientError as error:
            stats.errors.append(f"person {index}: {str(error).splitlines()[0]}")
        finally:
            await page.close(unload=True)


async def sample_server(pid: int, stats: LoadStats, started: float) -> None:
    """Every second: the server tree's CPU share of one core and its resident memory."""
    cpu, at = tree_cpu_seconds(pid), time.monotonic()
    while True:
        await asyncio.sleep(1.0)
        now_cpu, now = tree_cpu_seconds(pid), time.monotonic()
        stats.samples.append(
            {
                "t": now - started,
                "cpu": (now_cpu - cpu) / (now - at),
                "rss_mb": tree_rss_bytes(pid) / 2**20,
            }
        )
        cpu, at = now_cpu, now


async def run_load(target: Target, plan: Plan) -> LoadStats:
    """All people against one server; returns what they saw."""
    assert target.server is not None
    stats = LoadStats()
    started = time.monotonic()
    stop_at = started + plan.ramp + plan.duration
    sampler = asyncio.create_task(sample_server(target.server.pid, stats, started))
    try:
        await asyncio.gather(
            *(simulate_person(target, i, plan, stop_at, stats) for i in range(plan.people))
        )
    finally:
        sampler.cancel()
    return stats


async def journaled_updates(db_path: Path) -> dict[str, int]:
    """Slider updates each run's journal holds (browser `update` comm_msgs with a value)."""
    from runtime.store.store import Store

    store = await Store.open(f"sqlite:///{db_path}")
    try:
        counts: dict[str, int] = {}
        for run in await store.list_runs():
            events = await store.events(run.id, kinds=["comm_msg"])
            counts[run.id] = sum(
                1
                for event in events
                if isinstance(event.payload, dict)
                and event.payload.get("method") == "update"
                and "value" in (event.payload.get("state") or {})
            )
        return counts
    finally:
        await store.close()


async def journal_check(workdir: Path, target: Target, stats: LoadStats) -> dict[str, Any]:
    """Slider updates Freezer's journal holds, and those sent that it lacks (lost)."""
    if target.kind != "freezer" or target.server is None:
        return {"journaled": None, "lost_events": None}
    database = workdir / f"freezer-{target.server.port}.db"
    if not database.exists():
        return {"journaled": None, "lost_events": None}
    journaled = await journaled_updates(database)
    lost = sum(max(0, sent - journaled.get(run, 0)) for run, sent in stats.updates_by_run.items())
    return {"journaled": sum(journaled.values()), "lost_events": lost}


def summary(stats: LoadStats, journal: dict[str, Any], plan: Plan) -> dict[str, Any]:
    cpu = [s["cpu"] for s in stats.samples]
    rss = [s["rss_mb"] for s in stats.samples]
    return {
        "sent": stats.sent,
        "acknowledged": stats.acknowledged,
        "nexts": stats.nexts,
        "errors": len(stats.errors),
        "error_messages": stats.errors[:50],
        **journal,
        "round_trip": summarize(stats.round_trips),
        "next": summarize(stats.next_seconds),
        "open": summarize(stats.open_seconds),
        "server_cpu_mean": sum(cpu) / len(cpu) if cpu else math.nan,
        "server_cpu_p95": percentile(cpu, 95),
        "server_rss_mb_max": max(rss) if rss else math.nan,
        "timeline": stats.samples,
        "samples": stats.round_trips,
        "plan": vars(plan),
    }


async def main() -> int:
    args_parser = parser(__doc__.splitlines()[0])
    args_parser.add_argument("--people", type=int, default=100, help="simulated people")
    args_parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    args_parser.add_argument("--interval", type=float, default=2.0, help="seconds per action")
    args_parser.add_argument("--next-every", type=int, default=20, help="actions per Next")
    args_parser.add_argument(
        "--ramp", type=float, default=None, help="seconds over which people arrive"
    )
    opts = options(args_parser.parse_args())
    people = 4 if opts.quick else opts.extra["people"]
    duration = 16.0 if opts.quick else opts.extra["duration"]
    next_every = 3 if opts.quick else opts.extra["next_every"]
    interval = opts.extra["interval"]
    ramp = opts.extra["ramp"] if opts.extra["ramp"] is not None else min(60.0, people * 0.5)
    stages = int(duration / interval / next_every) + 2
    plan = Plan(people, duration, interval, next_every, ramp, stages)
    all_targets = targets(opts)
    compared = [t for t in all_targets if t.name in ("voila", "freezer pool")]
    results: dict[str, Any] = {}
    with workspace(stages) as (notebook, app_dir, workdir):
        try:
            build_for(compared, notebook, app_dir)
            for target in compared:
                await target.start(notebook, app_dir, workdir)  # one server at a time
                if target.unavailable:
                    results[target.name] = {"unavailable": target.unavailable}
                    continue
                print(
                    f"loading {target.name}: {people} people, {duration:g} s "
                    f"(+{ramp:g} s ramp) ...",
                    flush=True,
                )
                client_cpu = time.process_time()
                stats = await run_load(target, plan)
                journal = await journal_check(workdir, target, stats)
                results[target.name] = summary(stats, journal, plan)
                results[target.name]["client_cpu_seconds"] = time.process_time() - client_cpu
                target.stop()
        finally:
            for target in compared:
                target.stop()
    report(results, plan, opts.out)
    return 0 if any("round_trip" in result for result in results.values()) else 1


def report(results: dict[str, Any], plan: Plan, out: Path) -> None:
    reference = results.get("voila", {}).get("round_trip", {}).get("p95", math.nan)
    rows = []
    for name, result in results.items():
        if "unavailable" in result:
            rows.append([name, f"n/a ({result['unavailable']})"] + [""] * 10)
            continue
        rt = result["round_trip"]
        lost = result["lost_events"]
        rows.append(
            [
                name,
                f"{result['acknowledged']}/{result['sent']}",
                str(result["errors"]),
                "n/a" if lost is None else str(lost),
                ms(rt["p50"]),
                ms(rt["p95"]),
                ms(rt["p99"]),
                ratio(rt["p95"], reference),
                ms(result["open"]["p50"]),
                ms(result["next"]["p50"]),
                f"{result['server_cpu_mean'] * 100:.0f}%",
                f"{result['server_rss_mb_max']:.0f} MB",
            ]
        )
    print()
    print_table(
        ["server", "acked/sent", "errors", "lost", "rt p50", "p95", "p99", "p95 vs voila",
         "open p50", "next p50", "cpu", "rss max"],
        rows,
    )  # fmt: skip
    data = {"benchmark": "load", **environment(), "plan": vars(plan), "targets": results}
    path = write_json(out, "load", data)
    samples = {name: r.get("samples", []) for name, r in results.items()}
    png = plot_samples(out, "load", f"Round trip under load ({plan.people} people)", samples)
    print(f"\nwrote {path} and {png}")


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
