"""New person: request to first stage ready, plain Voila (cold, preheated) vs Freezer.

For each notebook and server, N people one after the other: GET the page, connect to the
kernel, load the widget states, and wait until every widget of the first stage is available over
the websocket. Between people the server is left to settle (pools refilled). A person then
reloads the page ("returning person"): plain Voila renders it again in a new kernel, Freezer
re-attaches the run's live kernel. Median and p95, ratio to plain Voila's cold render.

Notebooks (`--notebooks`, all three by default):

- `pipeline`: a generated two-stage pipeline (a slider and a label per stage);
- `labeling`: `examples/labeling.ipynb` (its first stage is ready when the person picker is);
- `setup2s`: the pipeline whose first cell also takes 2 s (imports, model loading), tagged
  `freeze:warm`.

    .venv/bin/python benchmarks/first_stage.py [--people 30] [--notebooks pipeline,labeling]
        [--only "voila,freezer pool,freezer fork"] [--quick]

`freezer fork` is Freezer without a pool whose kernels are forked (`--pool-size=0 --kernel-start
fork`): a new person waits for a kernel forked from the app's warmed parent (its spare), then for
the warm cells and the first stage.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    ClientError,
    PageSession,
    Person,
    Target,
    build_for,
    environment,
    freezer_available,
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
FORK_TARGET = "freezer fork"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def labeling_ready(page: PageSession) -> bool:
    """examples/labeling.ipynb's first stage is on the page: its person picker is shown last."""
    return bool(page.find_all(_model_name="ToggleButtonsModel", description="Person:"))


@dataclass(frozen=True)
class Notebook:
    """One notebook measured: how to write it, and when its first stage is ready."""

    name: str
    ready: Callable[[PageSession], bool]
    setup_seconds: float = 0.0
    copy_of: Path | None = None


NOTEBOOKS = {
    "pipeline": Notebook("pipeline", stage_ready(0)),
    "labeling": Notebook("labeling", labeling_ready, copy_of=EXAMPLES / "labeling.ipynb"),
    "setup2s": Notebook("setup2s", stage_ready(0), setup_seconds=2.0),
}


async def first_stage_seconds(
    target: Target, index: int, ready: Callable[[PageSession], bool]
) -> tuple[float, float]:
    """One new person: seconds to the first stage ready, then to it again after a reload."""
    assert target.server is not None
    async with Person(target.server.base_url) as person:
        session = await target.open_page(person, index)
        await session.wait_for(ready, STAGE_TIMEOUT, "the first stage")
        first = time.perf_counter() - session.started
        page_path = session.page.url
        await session.close(unload=True)  # a reload sends the page's unload beacon
        await wait_quiet(target.server.pid)
        again = await person.open(page_path)
        await again.wait_for(ready, STAGE_TIMEOUT, "the first stage after a reload")
        reload = time.perf_counter() - again.started
        await again.close(unload=True)
        return first, reload


async def measure(
    target: Target, people: int, warm_up: bool, ready: Callable[[PageSession], bool]
) -> dict[str, Any]:
    assert target.server is not None
    firsts: list[float] = []
    reloads: list[float] = []
    errors: list[str] = []
    for index in range(-1 if warm_up else 0, people):  # person -1 warms up, is not counted
        await wait_quiet(target.server.pid)
        try:
            first, reload = await first_stage_seconds(target, index, ready)
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
    args_parser.add_argument("--people", type=int, default=30, help="people per server")
    args_parser.add_argument(
        "--notebooks", default=",".join(NOTEBOOKS),
        help=f"comma-separated notebooks to measure ({', '.join(NOTEBOOKS)})",
    )
    opts = options(args_parser.parse_args())
    people = 1 if opts.quick else opts.extra["people"]
    names = [name.strip() for name in opts.extra["notebooks"].split(",") if name.strip()]
    unknown = [name for name in names if name not in NOTEBOOKS]
    if unknown or not names:
        args_parser.error(f"--notebooks: unknown {', '.join(unknown) or '(none given)'}")
    measured = 0
    for name in names:
        results = await measure_notebook(NOTEBOOKS[name], opts, people)
        report(results, people, opts.out, name)
        measured += any("first_stage" in r for r in results.values())
    return 0 if measured == len(names) else 1


async def measure_notebook(notebook: Notebook, opts: Any, people: int) -> dict[str, Any]:
    """Every requested server, one at a time, on one notebook."""
    all_targets = targets(opts)
    # no pool, kernels forked from the app's warmed parent: the new person waits a fork
    fork_wanted = opts.freezer and (not opts.only or FORK_TARGET in opts.only)
    all_targets.append(Target(FORK_TARGET, "freezer",
                              [*opts.no_pool_args, "--kernel-start", "fork"],
                              unavailable=freezer_available() if fork_wanted
                              else "not requested"))
    results: dict[str, Any] = {}
    with workspace(2, notebook.setup_seconds, notebook.copy_of) as (path, app_dir, workdir):
        try:
            build_for(all_targets, path, app_dir)
            for target in all_targets:
                await target.start(path, app_dir, workdir)  # one server at a time
                if target.unavailable:
                    results[target.name] = {"unavailable": target.unavailable}
                    continue
                print(f"measuring {target.name} on {notebook.name} ({people} people) ...",
                      flush=True)
                results[target.name] = await measure(
                    target, people, warm_up=not opts.quick, ready=notebook.ready
                )
                target.stop()
        finally:
            for target in all_targets:
                target.stop()
    return results


def report(results: dict[str, Any], people: int, out: Any, notebook: str) -> None:
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
    print(f"\nnotebook: {notebook}")
    print_table(["server", "first stage p50", "p95", "vs voila cold", "reload p50", "errors"], rows)
    data = {
        "benchmark": "first_stage", "notebook": notebook, "people": people, **environment(),
        "targets": results,
    }
    # the pipeline keeps the plain file name, which summary_plot.py reads
    stem = "first_stage" if notebook == "pipeline" else f"first_stage_{notebook}"
    path = write_json(out, stem, data)
    samples = {name: r.get("samples", []) for name, r in results.items()}
    png = plot_samples(out, stem, f"Request to first stage ready ({notebook})", samples)
    print(f"wrote {path} and {png}\n")


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
