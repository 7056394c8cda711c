"""New person: request to first stage ready, plain Voila (cold, preheated) vs Freezer.

For each server, N people one after the other: GET the page, connect to the kernel, load the
widget states, and wait until every widget of the first stage is available over the websocket.
Between people the server is left to settle (pools refilled). A person then reloads the page
("returning person"): plain Voila renders it again in a new kernel, Freezer re-attaches the run's
live kernel. Median and p95, ratio to plain Voila's cold render.

    .venv/bin/python benchmarks/first_stage.py [--people 20] [--quick] [--voila-only]
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from common import (
    ClientError,
    Person,
    Target,
    build_for,
    environment,
    ms,
    options,
    parser,
    plot_samples,
    print_table,
    ratio,
    stage_ready,
    summarize,
    targets,
    wait_quiet,
    workspace,
    write_json,
)

STAGE_TIMEOUT = 120.0


async def first_stage_seconds(target: Target, index: int) -> tuple[float, float]:
    """One new person: seconds to the first stage ready, then to it again after a reload."""
    assert target.server is not None
    async with Person(target.server.base_url) as person:
        session = await target.open_page(person, index)
        await session.wait_for(stage_ready(0), STAGE_TIMEOUT, "the first stage")
        first = time.perf_counter() - session.started
        page_path = session.page.url
        await session.close(unload=True)  # a reload sends the page's unload beacon
        await wait_quiet(target.server.pid)
        again = await person.open(page_path)
        await again.wait_for(stage_ready(0), STAGE_TIMEOUT, "the first stage after a reload")
        reload = time.perf_counter() - again.started
        await again.close(unload=True)
        return first, reload


async def measure(target: Target, people: int, warm_up: bool) -> dict[str, Any]:
    assert target.server is not None
    firsts: list[float] = []
    reloads: list[float] = []
    errors: list[str] = []
    for index in range(-1 if warm_up else 0, people):  # person -1 warms up, is not counted
        await wait_quiet(target.server.pid)
        try:
            first, reload = await first_stage_seconds(target, index)
        except ClientError as error:
            errors.append(str(error).splitlines()[0])
            continue
        if index >= 0:
            firsts.append(first)
            reloads.append(reload)
    return {
        "first_stage": summarize(firsts),
        "reload": summarize(reloads),
        "samples": firsts,
        "reload_samples": reloads,
        "errors": errors,
    }


async def main() -> int:
    args_parser = parser(__doc__.splitlines()[0])
    args_parser.add_argument("--people", type=int, default=20, help="people per server")
    opts = options(args_parser.parse_args())
    people = 1 if opts.quick else opts.extra["people"]
    all_targets = targets(opts)
    results: dict[str, Any] = {}
    with workspace(stages=2) as (notebook, app_dir, workdir):
        try:
            build_for(all_targets, notebook, app_dir)
            for target in all_targets:
                await target.start(notebook, app_dir, workdir)  # one server at a time
                if target.unavailable:
                    results[target.name] = {"unavailable": target.unavailable}
                    continue
                print(f"measuring {target.name} ({people} people) ...", flush=True)
                results[target.name] = await measure(target, people, warm_up=not opts.quick)
                target.stop()
        finally:
            for target in all_targets:
                target.stop()
    report(results, people, opts.out)
    return 0 if any("first_stage" in r for r in results.values()) else 1


def report(results: dict[str, Any], people: int, out: Any) -> None:
    cold = results.get("voila", {}).get("first_stage", {}).get("p50", math.nan)
    rows = []
    for name, result in results.items():
        if "unavailable" in result:
            na = f"n/a ({result['unavailable']})"
            rows.append([name, na, "", "", "", ""])
            continue
        first, reload = result["first_stage"], result["reload"]
        rows.append(
            [
                name,
                ms(first["p50"]),
                ms(first["p95"]),
                ratio(first["p50"], cold),
                ms(reload["p50"]),
                str(len(result["errors"])),
            ]
        )
    print()
    print_table(["server", "first stage p50", "p95", "vs voila cold", "reload p50", "errors"], rows)
    data = {"benchmark": "first_stage", "people": people, **environment(), "targets": results}
    path = write_json(out, "first_stage", data)
    samples = {name: r.get("samples", []) for name, r in results.items()}
    png = plot_samples(out, "first_stage", "Request to first stage ready", samples)
    print(f"\nwrote {path} and {png}")


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
