"""Work queue throughput: claims and submits per second with 100 concurrent runs.

Store level, as one server process does it: one `Store` (its worker thread), 100 runs of 100
different people, each in a loop of `queue_claim` (a batch) then `queue_answer` (answering the
whole batch), concurrently, until the queue has nothing left for anyone. Prints, per database,
claims/s and submits/s (each: how many there were / the wall time of the whole loop), the
operations per second together, their latencies (p50, p99) and the CPU time of this process.
Checks at the end that every item has exactly `overlap` answers from different people.

    .venv/bin/python benchmarks/work_queue.py                   # 100 runs, 5,000 items, overlap 2
    .venv/bin/python benchmarks/work_queue.py --quick           # a tiny smoke run
    .venv/bin/python benchmarks/work_queue.py --runs 100 --items 5000 --batch 10 --overlap 2

PostgreSQL (the local test server, in a throw-away schema) is measured too when it answers;
`--no-postgres` skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Not `benchmarks/queue.py`: run as scripts, the benchmarks have this directory first on
# sys.path, where that name would hide the standard library's `queue`.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.journal_append import manifest, postgres_schema  # noqa: E402
from runtime.store.store import Store  # noqa: E402


@dataclass
class Figures:
    """What one measurement found."""

    database: str
    runs: int
    items: int
    seconds: float
    cpu_seconds: float
    claim_latencies: list[float]
    submit_latencies: list[float]

    def report(self) -> str:
        claims, submits = len(self.claim_latencies), len(self.submit_latencies)

        def pct(values: list[float], p: float) -> float:
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000

        return (
            f"{self.database:<10} {self.runs:>4} runs {self.items:>6} items  "
            f"{claims / self.seconds:>7,.0f} claims/s  {submits / self.seconds:>7,.0f} submits/s  "
            f"({(claims + submits) / self.seconds:,.0f} ops/s, {claims} claims, "
            f"{submits} submits in {self.seconds:.1f} s)  "
            f"claim p50 {pct(self.claim_latencies, 0.5):.1f} ms p99 "
            f"{pct(self.claim_latencies, 0.99):.1f} ms  "
            f"submit p50 {pct(self.submit_latencies, 0.5):.1f} ms p99 "
            f"{pct(self.submit_latencies, 0.99):.1f} ms  "
            f"CPU {self.cpu_seconds / (claims + submits) * 1e3:.2f} ms/op"
        )


async def measure(url: str, label: str, runs: int, items: int, batch: int,
                  overlap: int, analyze: bool = False) -> Figures:
    """Label the whole queue from `runs` concurrent runs; check the result."""
    store = await Store.open(url)
    try:
        app = manifest()
        await store.ensure_app(app)
        run_ids = []
        for i in range(runs):
            user = await store.get_or_create_user(f"labeler{i}")
            run_ids.append((await store.create_run(app.app_id, user.id, i, {})).id)
        await store.queue_open("bench", list(range(items)), batch=batch, overlap=overlap)
        if analyze and url.startswith("postgresql"):
            analyze_tables(url)
        claim_latencies: list[float] = []
        submit_latencies: list[float] = []

        async def person(run_id: str) -> None:
            while True:
                started = time.perf_counter()
                mine = await store.queue_claim("bench", run_id)
                claim_latencies.append(time.perf_counter() - started)
                if not mine:
                    return  # nothing left for this person (the others hold or did the rest)
                started = time.perf_counter()
                answered = await store.queue_answer("bench", run_id,
                                                    [(item, "yes") for item in mine])
                if answered.refused:  # its own live claims: never refused
                    raise SystemExit(f"{label}: answers refused for {answered.refused}")
                submit_latencies.append(time.perf_counter() - started)

        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(person(r) for r in run_ids))
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started

        answers = await store.queue_answers("bench")
        per_item: dict[object, set[str]] = {}
        for answer in answers:
            per_item.setdefault(answer.item, set()).add(answer.user)
        if len(per_item) != items or any(len(u) != overlap for u in per_item.values()):
            raise SystemExit(f"{label}: items without exactly {overlap} answers")
        return Figures(label, runs, items, seconds, cpu_seconds, claim_latencies,
                       submit_latencies)
    finally:
        await store.close()


def analyze_tables(url: str) -> None:
    """ANALYZE the queue's tables (PostgreSQL): the planner then knows how many items there are."""
    import psycopg

    schema = url.split("search_path%3D", 1)[1].split("%20", 1)[0].split("&", 1)[0]
    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
        for table in ("queue_items", "queue_claims", "queue_answers"):
            conn.execute(f'ANALYZE "{schema}".{table}')


async def main(args: argparse.Namespace) -> int:
    shape = (args.runs, args.items, args.batch, args.overlap)
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'queue.db'}"
            print((await measure(url, "sqlite", *shape)).report(), flush=True)
    if not args.no_postgres:
        with postgres_schema() as pg_url:
            if pg_url is None:
                print("postgresql skipped: not reachable at 127.0.0.1:5432")
            else:
                label = "postgresql" + (" (ANALYZE after opening)" if args.analyze else "")
                figures = await measure(pg_url, label, *shape, analyze=args.analyze)
                print(figures.report(), flush=True)
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="concurrent runs (100)")
    parser.add_argument("--items", type=int, default=5000, help="items in the queue (5,000)")
    parser.add_argument("--batch", type=int, default=10, help="items per claim (10)")
    parser.add_argument("--overlap", type=int, default=2, help="answers per item (2)")
    parser.add_argument("--no-postgres", action="store_true", help="measure SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="measure PostgreSQL only")
    parser.add_argument("--analyze", action="store_true",
                        help="PostgreSQL: ANALYZE the queue tables once the items are in")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (10 runs, 200 items)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.items = 10, 200
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(sys.argv[1:]))))
