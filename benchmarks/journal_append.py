"""Journal append throughput: N events from K concurrent simulated runs through the Journal.

Each simulated run behaves like the websocket of one person: it appends a widget message and
waits for the commit before sending the next (the write-ahead rule), so with K runs at most K
events wait for one commit. Prints events/s, commits, events per commit and the append latency
(from `append` called to the event committed). Budget (DESIGN §7): > 5,000 events/s on SQLite.

    .venv/bin/python benchmarks/journal_append.py                  # 20,000 events, 50 runs
    .venv/bin/python benchmarks/journal_append.py --quick          # a tiny smoke run
    .venv/bin/python benchmarks/journal_append.py --events 50000 --runs 100 --db sqlite:///x.db

PostgreSQL (`postgresql+psycopg://postgres@127.0.0.1:5432/test`, in a throw-away schema) is
measured too when it answers; `--no-postgres` skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runtime.manifest import Cell, Manifest, Stage  # noqa: E402
from runtime.runs.journal import Journal  # noqa: E402
from runtime.store.store import NewEvent, Store  # noqa: E402

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
BUDGET_EVENTS_PER_S = 5000.0


@dataclass
class Figures:
    """What one measurement found."""

    database: str
    events: int
    runs: int
    seconds: float
    cpu_seconds: float  # CPU time of this process (all threads) while appending
    commits: int
    largest_batch: int
    latencies: list[float]

    def report(self) -> str:
        per_s = self.events / self.seconds
        ms = sorted(x * 1000 for x in self.latencies)
        p50 = statistics.median(ms)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return (
            f"{self.database:<10} {self.events:>7} events  {self.runs:>4} runs  "
            f"{per_s:>9,.0f} events/s  {self.commits:>6} commits  "
            f"{self.events / self.commits:>6.1f} events/commit (max {self.largest_batch})  "
            f"append p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
            f"CPU {self.cpu_seconds / self.events * 1e6:.0f} us/event"
        )


def manifest() -> Manifest:
    return Manifest(
        title="benchmark",
        source_name="bench.ipynb",
        source_sha256="0" * 64,
        freezer_version="0.1.0",
        created="2026-01-01T00:00:00+00:00",
        kernel_name="python3",
        kernel_language="python",
        stages=(Stage(index=0, title="Step 1", cells=(Cell("c", "code", "x = 1"),)),),
    ).with_app_id()


async def measure(url: str, label: str, events: int, runs: int, max_batch: int) -> Figures:
    """Append `events` widget messages from `runs` concurrent runs; check nothing was lost."""
    store = await Store.open(url)
    try:
        app = manifest()
        await store.ensure_app(app)
        user = await store.get_or_create_user("bench")
        run_ids = [(await store.create_run(app.app_id, user.id, i, {})).id for i in range(runs)]
        journal = Journal(store, max_batch=max_batch)
        latencies: list[float] = []
        per_run = [events // runs + (1 if i < events % runs else 0) for i in range(runs)]

        async def person(run_id: str, count: int) -> None:
            for i in range(count):
                # a typical ipywidgets update: a slider value
                payload = {"method": "update", "state": {"value": i}, "buffer_paths": []}
                started = time.perf_counter()
                await journal.append(NewEvent(run_id, "comm_msg", 7, payload))
                latencies.append(time.perf_counter() - started)

        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            await asyncio.gather(*(person(r, n) for r, n in zip(run_ids, per_run, strict=True)))
        finally:
            await journal.close()
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started

        for run_id, count in zip(run_ids, per_run, strict=True):
            seqs = [e.seq for e in await store.events(run_id)]
            if seqs != list(range(1, count + 1)):
                raise SystemExit(f"{label}: run {run_id} lost or reordered events")
        return Figures(
            label,
            events,
            runs,
            seconds,
            cpu_seconds,
            journal.stats.batches,
            journal.stats.largest_batch,
            latencies,
        )
    finally:
        await store.close()


@contextmanager
def postgres_schema() -> Iterator[str | None]:
    """A throw-away schema on the local PostgreSQL, or None when it does not answer."""
    try:
        import psycopg

        admin = psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=3)
    except Exception:
        yield None
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def main(args: argparse.Namespace) -> int:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = args.db or f"sqlite:///{Path(tmp) / 'journal.db'}"
        results.append(await measure(sqlite_url, "sqlite", args.events, args.runs, args.max_batch))
        print(results[-1].report(), flush=True)
    if not args.no_postgres:
        with postgres_schema() as pg_url:
            if pg_url is None:
                print("postgresql skipped: not reachable at 127.0.0.1:5432")
            else:
                results.append(
                    await measure(pg_url, "postgresql", args.events, args.runs, args.max_batch)
                )
                print(results[-1].report(), flush=True)
    sqlite_rate = results[0].events / results[0].seconds
    verdict = "within" if sqlite_rate > BUDGET_EVENTS_PER_S else "OVER"
    print(f"SQLite budget > {BUDGET_EVENTS_PER_S:,.0f} events/s: {verdict}")
    return 0 if args.quick or sqlite_rate > BUDGET_EVENTS_PER_S else 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in all (20,000)")
    parser.add_argument("--runs", type=int, default=50, help="concurrent runs (50)")
    parser.add_argument("--max-batch", type=int, default=500, help="Journal max_batch (500)")
    parser.add_argument("--db", help="SQLite (or other) URL instead of a temporary file")
    parser.add_argument("--no-postgres", action="store_true", help="measure SQLite only")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (500 events, 5 runs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.runs = 500, 5
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
