"""Returning person whose run's kernel is gone: request to page ready, by the run's journal size.

On Freezer's server (`--cull-idle-timeout 1`, so a run's kernel is shut down a second after its
page closes) a person starts a run, moves the first stage's slider K times (each change waits for
the label its callback sets, so each is one journaled action), and closes the page. Once the
server has culled the kernel, the person opens the run again: the server replays the K actions in
a fresh kernel before it sends the page. Timed: from that request until the page shows the
slider at its last value and the label it set. K = 10, 100 and 1,000 (`--actions`), each
`--repeat` times.

Plain Voila has no counterpart (a reload is a new, empty page); its cold page from the same run is
the reference, as in `first_stage.py`.

    .venv/bin/python benchmarks/replay.py [--actions 10,100,1000] [--repeat 5] [--quick]
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

from common import (
    Person,
    Target,
    build_for,
    environment,
    move_slider,
    ms,
    options,
    parser,
    print_table,
    ratio,
    slider_at,
    stage_ready,
    summarize,
    targets,
    wait_quiet,
    workspace,
    write_json,
)

TIMEOUT = 300.0
CULL_SECONDS = "1"


async def health(person: Person) -> dict[str, Any]:
    response = await person.fetch("health")
    data: dict[str, Any] = json.loads(response.body or b"{}")
    return data


async def replayed_seconds(target: Target, index: int, actions: int) -> float:
    """One person: a run with `actions` slider changes, culled, then opened again (seconds)."""
    assert target.server is not None
    async with Person(target.server.base_url) as person:
        page = await target.open_page(person, index)
        await page.wait_for(stage_ready(0), TIMEOUT, "the first stage")
        last = await move_slider(page, actions, TIMEOUT)
        run_path = page.page.url
        culled = (await health(person))["culled"]
        await page.close(unload=True)
        while (await health(person))["culled"] <= culled:
            await asyncio.sleep(0.05)
        await wait_quiet(target.server.pid)
        again = await person.open(run_path)
        await again.wait_for(
            slider_at(last),
            TIMEOUT,
            f"the replayed slider at {last}",
        )
        seconds = time.perf_counter() - again.started
        await again.close(unload=True)
        return seconds


async def cold_voila_seconds(target: Target, people: int) -> list[float]:
    assert target.server is not None
    samples = []
    for _ in range(people):
        await wait_quiet(target.server.pid)
        async with Person(target.server.base_url) as person:
            page = await target.open_page(person, 0)
            await page.wait_for(stage_ready(0), TIMEOUT, "the first stage")
            samples.append(time.perf_counter() - page.started)
            await page.close(unload=True)
    return samples


async def main() -> int:
    args_parser = parser(__doc__.splitlines()[0])
    args_parser.add_argument(
        "--actions", default="10,100,1000", help="comma-separated journal sizes to replay"
    )
    args_parser.add_argument("--repeat", type=int, default=5, help="runs per journal size")
    opts = options(args_parser.parse_args())
    sizes = [10] if opts.quick else [int(k) for k in opts.extra["actions"].split(",") if k]
    repeat = 1 if opts.quick else opts.extra["repeat"]
    all_targets = {t.name: t for t in targets(opts)}
    voila = all_targets["voila"]
    freezer = all_targets["freezer pool"]
    freezer.extra_args = [*freezer.extra_args, "--cull-idle-timeout", CULL_SECONDS]
    results: dict[str, Any] = {}
    with workspace(stages=2) as (notebook, app_dir, workdir):
        try:
            build_for([freezer], notebook, app_dir)
            await voila.start(notebook, app_dir, workdir)
            if voila.unavailable:
                results["voila"] = {"unavailable": voila.unavailable}
            else:
                print(f"measuring voila cold ({repeat} people) ...", flush=True)
                results["voila"] = {"cold": summarize(await cold_voila_seconds(voila, repeat))}
                voila.stop()
            await freezer.start(notebook, app_dir, workdir)
            if freezer.unavailable:
                results["freezer pool"] = {"unavailable": freezer.unavailable}
            else:
                replays: dict[str, Any] = {}
                person_index = 0
                for size in sizes:
                    print(f"measuring freezer replay of {size} actions ({repeat} runs) ...",
                          flush=True)
                    samples = []
                    for _ in range(repeat):
                        person_index += 1
                        samples.append(await replayed_seconds(freezer, person_index, size))
                    replays[str(size)] = {**summarize(samples), "samples": samples}
                results["freezer pool"] = {"replay": replays}
                freezer.stop()
        finally:
            voila.stop()
            freezer.stop()
    report(results, sizes, repeat, opts.out)
    return 0 if "replay" in results.get("freezer pool", {}) else 1


def report(results: dict[str, Any], sizes: list[int], repeat: int, out: Any) -> None:
    cold = results.get("voila", {}).get("cold", {}).get("p50", math.nan)
    rows = [["voila (cold page)", "-", ms(cold), "1.00x"]]
    replays = results.get("freezer pool", {}).get("replay", {})
    for size in sizes:
        figures = replays.get(str(size))
        if figures is None:
            rows.append(["freezer pool, replayed", str(size), "n/a", ""])
            continue
        rows.append(
            ["freezer pool, replayed", f"{size:,}", ms(figures["p50"]), ratio(figures["p50"], cold)]
        )
    print()
    print_table(["server", "actions in the run", "request to page ready p50", "vs voila"], rows)
    data = {"benchmark": "replay", "repeat": repeat, **environment(), "targets": results}
    path = write_json(out, "replay", data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
