"""Going back: from the go-back request to the earlier stage ready, by the run's journal size.

On Freezer's server (a pool of one kernel) a person starts a run, moves the first stage's slider
K times (each change waits for the label its callback sets, so each is one journaled action),
presses Next and waits for stage 1. Then they go back to stage 0: the request the Back dialog
posts (`POST /back/<run>`). Two figures per sample:

- `answered`: from the request until its answer (the 303 to the run page). The server has
  shut the run's kernel down, journaled the go-back and replayed the K actions in a fresh
  kernel, held before the Next: stage 0 waits for the person in the kernel.
- `page ready`: from the same request until the reloaded page shows stage 0's slider at its
  last value and its label (the redirect followed, the page rendered, its widgets loaded).

K = 10, 100 and 1,000 (`--actions`; the run's journal also holds the Next click), each
`--repeat` times. Plain Voila has no counterpart: it has no stages, and a reload is a new, empty
page, so nothing is compared with it here.

    .venv/bin/python benchmarks/back.py [--actions 10,100,1000] [--repeat 5] [--quick]
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from common import (
    ClientError,
    Person,
    Target,
    build_for,
    environment,
    move_slider,
    ms,
    options,
    parser,
    print_table,
    slider_at,
    slider_description,
    stage_ready,
    summarize,
    targets,
    wait_quiet,
    workspace,
    write_json,
)

TIMEOUT = 300.0


async def back_seconds(target: Target, index: int, actions: int) -> tuple[float, float]:
    """One person: a run with `actions` slider changes and a Next, then the go-back to stage 0
    (seconds until the request is answered, and until the page shows stage 0 again)."""
    assert target.server is not None
    async with Person(target.server.base_url) as person:
        page = await target.open_page(person, index)
        await page.wait_for(stage_ready(0), TIMEOUT, "the first stage")
        last = await move_slider(page, actions, TIMEOUT)
        next_button = page.find(_model_name="ButtonModel", description="Next", disabled=False)
        await page.wait_idle(await page.click(next_button), TIMEOUT)
        await page.wait_for(stage_ready(1), TIMEOUT, "the second stage")
        run_path = page.page.url
        run_id = run_path.rstrip("/").rsplit("/", 1)[-1]
        xsrf = page.page.xsrf
        assert xsrf, "the run page has no XSRF token"
        await page.close(unload=True)
        await wait_quiet(target.server.pid)

        started = time.perf_counter()
        answer = await person.fetch(f"back/{run_id}", method="POST",
                                    form={"_xsrf": xsrf, "stage": "0"}, follow_redirects=False)
        answered = time.perf_counter() - started
        if answer.code != 303:
            raise ClientError(f"the go-back answered {answer.code}: {answer.body[:300]!r}")
        again = await person.open(run_path)
        await again.wait_for(
            lambda p: slider_at(last)(p) and not p.find_all(description=slider_description(1)),
            TIMEOUT,
            f"stage 0 again, its slider at {last}",
        )
        ready = time.perf_counter() - started
        await again.close(unload=True)
        return answered, ready


async def main() -> int:
    args_parser = parser(__doc__.splitlines()[0])
    args_parser.add_argument(
        "--actions", default="10,100,1000", help="comma-separated journal sizes to go back over"
    )
    args_parser.add_argument("--repeat", type=int, default=5, help="runs per journal size")
    opts = options(args_parser.parse_args())
    sizes = [10] if opts.quick else [int(k) for k in opts.extra["actions"].split(",") if k]
    repeat = 1 if opts.quick else opts.extra["repeat"]
    freezer = {t.name: t for t in targets(opts)}["freezer pool"]
    results: dict[str, Any] = {}
    with workspace(stages=2) as (notebook, app_dir, workdir):
        try:
            build_for([freezer], notebook, app_dir)
            await freezer.start(notebook, app_dir, workdir)
            if freezer.unavailable:
                results["freezer pool"] = {"unavailable": freezer.unavailable}
            else:
                figures: dict[str, Any] = {}
                person_index = 0
                for size in sizes:
                    print(f"measuring going back over {size} actions ({repeat} runs) ...",
                          flush=True)
                    answered, ready = [], []
                    for _ in range(repeat):
                        person_index += 1
                        seconds = await back_seconds(freezer, person_index, size)
                        answered.append(seconds[0])
                        ready.append(seconds[1])
                    figures[str(size)] = {
                        "answered": {**summarize(answered), "samples": answered},
                        "page_ready": {**summarize(ready), "samples": ready},
                    }
                results["freezer pool"] = {"back": figures}
        finally:
            freezer.stop()
    report(results, sizes, repeat, opts.out)
    return 0 if "back" in results.get("freezer pool", {}) else 1


def report(results: dict[str, Any], sizes: list[int], repeat: int, out: Any) -> None:
    rows = []
    figures = results.get("freezer pool", {}).get("back", {})
    for size in sizes:
        one = figures.get(str(size))
        if one is None:
            rows.append([f"{size:,}", "n/a", "n/a", "n/a"])
            continue
        rows.append([f"{size:,}", ms(one["answered"]["p50"]), ms(one["answered"]["p95"]),
                     ms(one["page_ready"]["p50"])])
    print()
    print_table(["slider actions in the run", "go-back answered p50", "answered p95",
                 "page shows stage 0 p50"], rows)
    data = {"benchmark": "back", "repeat": repeat, **environment(), "targets": results}
    path = write_json(out, "back", data)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
