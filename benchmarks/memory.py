"""Memory: an idle pooled kernel, a live run's kernel, the server, and the database per run.

Plain Voila and Freezer (`--pool-size=2`, its kernels spawned, then forked: `--kernel-start
fork`) serve the same pipeline notebook. After the server settles, the RSS and the PSS of the
server process alone and of each kernel are read from `/proc` (PSS from `smaps_rollup`: a page
shared by n processes counts 1/n in each, so forked kernels' shared imports are not counted n
times; the fork parent's own PSS is reported beside them); then one
person opens a page, moves the slider `--updates` times, and the RSS of that page's kernel is
read (plain Voila: its only kind of kernel). Finally `--runs` runs of `--events` slider updates
each are stored through the store API in a fresh SQLite file (what culled runs cost: their rows
only), and the file's size per run is reported. Budget (DESIGN §7): idle pooled kernel < 90 MB.

`--live 100,200,300` then measures many live kernels: for each kernel start in `--live-starts`
(`fork,spawn`), one Freezer server with `--pool-size` the largest count fills its pool (each
kernel started and prepared: imports and warm cells run, as a run's kernel before its first
stage); when the pool holds each count, the PSS of every kernel, of the fork parent and of the
server is read, and how many such kernels fit in this machine's memory (`MemTotal`, less the
server and the parent) is reported. `--live-spawn-max` caps the spawned counts (a spawned kernel
shares nothing: 300 of them need about 15 GB). Every kernel is shut down with its server.

    .venv/bin/python benchmarks/memory.py [--runs 1000] [--events 50] [--updates 20] [--quick]
        [--live 100,200,300] [--live-starts fork,spawn] [--live-spawn-max 100]
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    Target,
    build_app,
    build_for,
    environment,
    freezer_available,
    label_text,
    options,
    parser,
    print_table,
    rss_bytes,
    slider_description,
    stage_ready,
    targets,
    wait_quiet,
    workspace,
    write_json,
)

from tests.support.person import Person
from tests.support.processes import child_pids, kernel_pids
from tests.support.session import PageSession

MB = 1024.0 * 1024.0
LIVE_FILL_TIMEOUT = 900.0
FORK_TARGET = "freezer fork pool"
BUDGET_POOL_KERNEL_MB = 90.0
STAGE_TIMEOUT = 120.0


def pss_bytes(pid: int) -> int:
    """Proportional set size of a process (`/proc/PID/smaps_rollup`); 0 when unreadable."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def fork_parent_pids(server_pid: int) -> list[int]:
    """The server's fork parents (`--kernel-start fork`)."""
    found = []
    for pid in child_pids(server_pid):
        with contextlib.suppress(OSError):
            if b"runtime.runs.fork_parent" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


def _label_shows(value: int) -> Callable[[PageSession], bool]:
    def shows(page: PageSession) -> bool:
        return bool(page.find_all(value=label_text(0, value)))

    return shows


async def measure_server(target: Target, updates: int) -> dict[str, Any]:
    assert target.server is not None
    pid = target.server.pid
    await wait_quiet(pid, timeout=60.0)
    idle = kernel_pids(pid)
    result: dict[str, Any] = {
        "server_mb": rss_bytes(pid) / MB,
        "server_pss_mb": pss_bytes(pid) / MB,
        "idle_kernels_mb": [rss_bytes(p) / MB for p in idle.values()],
        "idle_kernels_pss_mb": [pss_bytes(p) / MB for p in idle.values()],
        "fork_parents_mb": [rss_bytes(p) / MB for p in fork_parent_pids(pid)],
        "fork_parents_pss_mb": [pss_bytes(p) / MB for p in fork_parent_pids(pid)],
    }
    async with Person(target.server.base_url) as person:
        session = await target.open_page(person, 0)
        await session.wait_for(stage_ready(0), STAGE_TIMEOUT, "the first stage")
        slider = session.find(description=slider_description(0))
        for value in range(updates):
            await session.set_value(slider, value)
            await session.wait_for(_label_shows(value), 30.0, "the label")
        await wait_quiet(pid, timeout=60.0)
        kernels = kernel_pids(pid)
        run_pid = kernels.get(session.kernel_id)
        result["run_kernel_mb"] = rss_bytes(run_pid) / MB if run_pid else math.nan
        result["run_kernel_pss_mb"] = pss_bytes(run_pid) / MB if run_pid else math.nan
        result["server_mb_after_run"] = rss_bytes(pid) / MB
        await session.close(unload=True)
    return result


def mem_total_bytes() -> int:
    """This machine's memory (`MemTotal` of /proc/meminfo)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def live_sample(server_pid: int) -> dict[str, Any]:
    """PSS and RSS of every kernel of the server now, of its fork parents and of the server."""
    kernels = list(kernel_pids(server_pid).values())
    pss = [pss_bytes(p) for p in kernels]
    parents_pss = sum(pss_bytes(p) for p in fork_parent_pids(server_pid))
    server_pss = pss_bytes(server_pid)
    mean = sum(pss) / len(pss) if pss else math.nan
    total = mem_total_bytes()
    return {
        "kernels": len(kernels),
        "kernel_pss_mb_mean": mean / MB,
        "kernel_pss_mb_max": max(pss, default=0) / MB,
        "kernel_rss_mb_mean": sum(rss_bytes(p) for p in kernels) / max(len(kernels), 1) / MB,
        "parents_pss_mb": parents_pss / MB,
        "server_pss_mb": server_pss / MB,
        "all_pss_mb": (sum(pss) + parents_pss + server_pss) / MB,
        "mem_total_mb": total / MB,
        "fit": math.floor((total - parents_pss - server_pss) / mean) if pss else 0,
    }


async def measure_live(
    start: str, counts: list[int], notebook: Path, app_dir: Path, workdir: Path
) -> dict[str, Any]:
    """One server whose pool fills to max(counts) kernels; a sample at each count."""
    target = Target(f"freezer {start} x{max(counts)}", "freezer",
                    ["--pool-size", str(max(counts)), "--kernel-start", start])
    await target.start(notebook, app_dir, workdir)
    if target.unavailable or target.server is None:
        return {"unavailable": target.unavailable}
    samples: dict[str, Any] = {}
    try:
        pid = target.server.pid
        for count in sorted(counts):
            deadline = time.monotonic() + LIVE_FILL_TIMEOUT
            while len(kernel_pids(pid)) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            if len(kernel_pids(pid)) < count:
                samples[str(count)] = {"unavailable": f"only {len(kernel_pids(pid))} started"}
                break
            if count == max(counts):
                await wait_quiet(pid, timeout=120.0)
            samples[str(count)] = live_sample(pid)
            got = samples[str(count)]
            print(f"  {start} {count}: {got['kernels']} kernels, "
                  f"PSS {got['kernel_pss_mb_mean']:.1f} MB each, fit {got['fit']}", flush=True)
    finally:
        target.stop()
    return samples


async def measure_database(runs: int, events: int) -> dict[str, Any]:
    """Store `runs` runs of `events` slider updates each; the SQLite file size per run."""
    from journal_append import manifest

    from runtime.store.store import NewEvent, Store

    with tempfile.TemporaryDirectory(prefix="freezer-bench-db-") as tmp:
        path = Path(tmp) / "runs.db"
        store = await Store.open(f"sqlite:///{path}")
        try:
            app = manifest()
            await store.ensure_app(app)
            empty = path.stat().st_size
            for index in range(runs):
                user = await store.get_or_create_user(f"person-{index}")
                run = await store.create_run(app.app_id, user.id, index, {})
                batch = [
                    NewEvent(
                        run.id,
                        "comm_msg",
                        7,
                        {"method": "update", "state": {"value": i}, "buffer_paths": []},
                    )
                    for i in range(events)
                ]
                await store.append_events(batch)
        finally:
            await store.close()
        size = path.stat().st_size
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                size += (path.parent / (path.name + suffix)).stat().st_size
    return {
        "runs": runs,
        "events_per_run": events,
        "bytes": size,
        "bytes_empty": empty,
        "bytes_per_run": (size - empty) / runs,
        "bytes_per_event": (size - empty) / (runs * events) if events else math.nan,
    }


async def main() -> int:
    args_parser = parser(__doc__.splitlines()[0])
    args_parser.add_argument("--runs", type=int, default=1000, help="stored runs (1,000)")
    args_parser.add_argument("--events", type=int, default=50, help="events per stored run")
    args_parser.add_argument("--updates", type=int, default=20, help="slider moves on the page")
    args_parser.add_argument("--live", default="", help="live kernel counts, e.g. 100,200,300")
    args_parser.add_argument("--live-starts", default="fork,spawn", help="kernel starts for --live")
    args_parser.add_argument("--live-spawn-max", type=int, default=100,
                             help="largest count of spawned kernels for --live (100)")
    opts = options(args_parser.parse_args())
    runs = 20 if opts.quick else opts.extra["runs"]
    updates = 2 if opts.quick else opts.extra["updates"]
    all_targets = [t for t in targets(opts) if t.name in ("voila", "freezer pool")]
    forked = freezer_available() if opts.freezer else "not requested"
    if opts.only and FORK_TARGET not in opts.only:
        forked = "not requested"
    all_targets.append(Target(FORK_TARGET, "freezer", [*opts.pool_args, "--kernel-start", "fork"],
                              unavailable=forked))
    results: dict[str, Any] = {}
    live: dict[str, Any] = {}
    with workspace(stages=2) as (notebook, app_dir, workdir):
        try:
            build_for(all_targets, notebook, app_dir)
            for target in all_targets:
                await target.start(notebook, app_dir, workdir)
                if target.unavailable:
                    results[target.name] = {"unavailable": target.unavailable}
                    continue
                print(f"measuring {target.name} ...", flush=True)
                results[target.name] = await measure_server(target, updates)
                target.stop()
            counts = [int(n) for n in opts.extra["live"].split(",") if n.strip()]
            if counts and not (app_dir / "app.json").exists():
                build_app(notebook, app_dir)
            for start in [s.strip() for s in opts.extra["live_starts"].split(",") if counts]:
                capped = [n for n in counts if start != "spawn"
                          or n <= opts.extra["live_spawn_max"]]
                print(f"measuring {len(capped) and max(capped)} live {start} kernels ...",
                      flush=True)
                if capped:
                    live[start] = await measure_live(start, capped, notebook, app_dir, workdir)
        finally:
            for target in all_targets:
                target.stop()
    database = await measure_database(runs, opts.extra["events"])
    report(results, database, opts.out, live)
    return 0


def _mb(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0f} MB"


def report_live(live: dict[str, Any], results: dict[str, Any]) -> None:
    """The --live table, beside plain Voila's live run kernel of the same run."""
    rows = []
    for start, samples in live.items():
        if "unavailable" in samples:
            rows.append([start, "", f"n/a ({samples['unavailable']})", "", "", "", ""])
            continue
        for count, got in samples.items():
            if "unavailable" in got:
                rows.append([start, count, f"n/a ({got['unavailable']})", "", "", "", ""])
                continue
            rows.append([start, str(got["kernels"]), f"{got['kernel_pss_mb_mean']:.1f} MB",
                         f"{got['kernel_rss_mb_mean']:.1f} MB", f"{got['parents_pss_mb']:.0f} MB",
                         f"{got['all_pss_mb'] / 1024:.2f} GB", f"{got['fit']:,}"])
    print()
    print_table(["kernel start", "live kernels", "PSS per kernel", "RSS per kernel",
                 "parent PSS", "all PSS (kernels, parent, server)", "fit in MemTotal"], rows)
    voila = results.get("voila", {})
    if "run_kernel_pss_mb" in voila:
        total = mem_total_bytes()
        print(f"plain Voila, same run: a live kernel PSS {voila['run_kernel_pss_mb']:.1f} MB "
              f"(RSS {voila['run_kernel_mb']:.1f} MB): "
              f"{math.floor(total / (voila['run_kernel_pss_mb'] * MB)):,} fit in MemTotal "
              f"({total / MB / 1024:.1f} GiB)")


def report(results: dict[str, Any], database: dict[str, Any], out: Path,
           live: dict[str, Any]) -> None:
    rows = []
    for name, r in results.items():
        if "unavailable" in r:
            rows.append([name, f"n/a ({r['unavailable']})", *[""] * 6])
            continue
        idle = r["idle_kernels_mb"]
        idle_pss = r["idle_kernels_pss_mb"]
        parents = r["fork_parents_mb"]
        rows.append(
            [
                name,
                _mb(max(idle)) if idle else "none (no pool)",
                _mb(max(idle_pss)) if idle_pss else "",
                _mb(r["run_kernel_mb"]),
                _mb(r["run_kernel_pss_mb"]),
                _mb(r["server_mb"]),
                _mb(r["server_mb_after_run"]),
                f"{_mb(sum(parents))} / {_mb(sum(r['fork_parents_pss_mb']))}" if parents else "",
            ]
        )
    print()
    print_table(
        ["server", "idle kernel RSS (max)", "PSS", "live run kernel RSS", "PSS", "server idle",
         "server after run", "fork parent RSS / PSS"],
        rows,
    )
    pooled = results.get("freezer pool", {}).get("idle_kernels_mb", [])
    if pooled:
        verdict = "within" if max(pooled) < BUDGET_POOL_KERNEL_MB else "OVER"
        print(f"\nidle pooled kernel budget < {BUDGET_POOL_KERNEL_MB:.0f} MB: {verdict}")
    print(
        f"database: {database['runs']} runs x {database['events_per_run']} events = "
        f"{database['bytes'] / MB:.1f} MB on SQLite "
        f"({database['bytes_per_run'] / 1024:.1f} KB per run, "
        f"{database['bytes_per_event']:.0f} bytes per event)"
    )
    if live:
        report_live(live, results)
    data = {"benchmark": "memory", **environment(), "targets": results, "database": database,
            "live": live}
    print(f"\nwrote {write_json(out, 'memory', data)}")


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
