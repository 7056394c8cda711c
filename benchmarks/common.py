"""What the benchmarks share: the servers compared, the pipeline notebook, process figures,
percentiles, tables, JSON and PNG output.

Every benchmark measures plain Voila and Freezer's server in the same run, on the same notebook,
through the same protocol-level client (:mod:`tests.support.person`), and reports ratios against
plain Voila's cold render. Freezer's columns say "n/a (...)" while `freezer serve` is not
available or does not start. Benchmarks run as scripts; importing this module first puts the
checkout's root on `sys.path`, where `tests.support` lives.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run as a script (`python benchmarks/x.py`): the checkout's
    sys.path.insert(0, str(ROOT))  # root holds `tests.support`, the client every benchmark uses

from tests.support.errors import ClientError  # noqa: E402
from tests.support.person import Person  # noqa: E402
from tests.support.processes import (  # noqa: E402
    ServerProcess,
    child_pids,
    free_port,
    start_freezer,
    start_voila,
)
from tests.support.session import PageSession  # noqa: E402

RESULTS_DIR = HERE / "results"
START_TIMEOUT = 120.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# --- the notebook every benchmark serves ------------------------------------------------------


def slider_description(stage: int) -> str:
    return f"Threshold {stage}"


def label_text(stage: int, value: int) -> str:
    return f"stage {stage}: threshold {value}"


def write_pipeline_notebook(path: Path, stages: int, setup_seconds: float = 0.0) -> Path:
    """A labeling-like pipeline: each stage shows a slider whose callback updates a label; the
    next stage reads the slider (a boundary for Freezer; plain Voila runs everything at once).

    With `setup_seconds`, the first code cell also stands for imports and model loading that
    take that long, and is tagged `freeze:warm` (a pool kernel runs it before anyone comes).
    """
    setup = nbformat.v4.new_code_cell(
        "import ipywidgets as widgets\nfrom IPython.display import display"
    )
    if setup_seconds > 0:
        setup.source += f"\nimport time\ntime.sleep({setup_seconds:g})  # imports, model loading"
        setup.metadata["tags"] = ["freeze:warm"]
    cells = [nbformat.v4.new_markdown_cell("# Benchmark pipeline"), setup]
    for stage in range(stages):
        read = f"print('stage {stage - 1} chose', threshold_{stage - 1}.value)\n" if stage else ""
        cells.append(nbformat.v4.new_markdown_cell(f"## Stage {stage}"))
        cells.append(
            nbformat.v4.new_code_cell(
                f"{read}"
                f"threshold_{stage} = widgets.IntSlider(value=50, min=0, max=1000, "
                f"description={slider_description(stage)!r})\n"
                f"label_{stage} = widgets.Label(value={label_text(stage, 50)!r})\n"
                f"def on_change_{stage}(change):\n"
                f"    label_{stage}.value = f'stage {stage}: threshold {{change[\"new\"]}}'\n"
                f"threshold_{stage}.observe(on_change_{stage}, names='value')\n"
                f"display(threshold_{stage}, label_{stage})"
            )
        )
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"
    nbformat.write(notebook, path)
    return path


def stage_ready(stage: int) -> Callable[[PageSession], bool]:
    """The page shows stage `stage`'s slider and label (the stage's widgets are available)."""

    def ready(page: PageSession) -> bool:
        return bool(
            page.find_all(description=slider_description(stage))
            and page.find_all(value=label_text(stage, 50))
        )

    return ready


async def move_slider(page: PageSession, times: int, timeout: float) -> int:
    """Move stage 0's slider `times` times (1, 2, ... 1000, 1, ...), each change waited for
    until the label its callback sets is shown (so each is one journaled action); the last
    value."""
    slider = page.find(description=slider_description(0))
    last = 0
    for step in range(times):
        last = step % 1000 + 1
        sent = await page.set_value(slider, last)
        await page.wait_for(lambda p, value=last: bool(p.find_all(value=label_text(0, value))),
                            timeout)
        await page.wait_idle(sent, timeout)
    return last


def slider_at(last: int) -> Callable[[PageSession], bool]:
    """The page shows stage 0's slider at `last` and the label it set."""
    return lambda p: bool(p.find_all(description=slider_description(0), value=last)
                          and p.find_all(value=label_text(0, last)))


# --- the servers compared ---------------------------------------------------------------------


def freezer_available() -> str | None:
    """None when `freezer serve` can run here, else why not."""
    if importlib.util.find_spec("runtime.web.app") is None:  # not written yet
        return "server not available"
    return None


@dataclass
class Target:
    """One server configuration a benchmark measures."""

    name: str  # a column of the tables: "voila", "voila preheat", "freezer pool", ...
    kind: str  # "voila" or "freezer"
    extra_args: list[str]
    server: ServerProcess | None = None
    unavailable: str | None = None  # why this target has no figures

    @property
    def figure_label(self) -> str:
        return f"n/a ({self.unavailable})" if self.unavailable else ""

    async def start(self, notebook: Path, app_dir: Path, workdir: Path) -> None:
        """Start the server; on failure record why in :attr:`unavailable`."""
        if self.unavailable:
            return
        try:
            if self.kind == "voila":
                self.server = start_voila(notebook, extra_args=self.extra_args)
            else:
                self.server = start_target_freezer(app_dir, workdir, self.extra_args)
            await self.server.wait_ready(START_TIMEOUT)
        except (ClientError, OSError) as error:
            self.unavailable = f"server did not start: {str(error).splitlines()[0]}"
            self.stop()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    async def open_page(self, person: Person, index: int) -> PageSession:
        """A new person's page: plain Voila's only page, or a new run on Freezer's server."""
        if self.kind == "voila":
            return await person.open("")
        with contextlib.suppress(ClientError):  # `--auth none` has no sign-in form
            await person.login(name=f"bench-{index}-{time.monotonic_ns()}", follow_redirects=False)
        return await person.open("new")


def targets(opts: Options) -> list[Target]:
    """Plain Voila cold, Voila with preheated kernels, Freezer with and without a pool; those
    the options leave out say "not requested"."""
    freezer = freezer_available() if opts.freezer else "not requested"
    all_targets = [
        Target("voila", "voila", []),
        Target("voila preheat", "voila", ["--preheat_kernel=True"]),
        Target("freezer pool", "freezer", opts.pool_args, unavailable=freezer),
        Target("freezer", "freezer", opts.no_pool_args, unavailable=freezer),
    ]
    for target in all_targets:
        if opts.only and target.name not in opts.only:
            target.unavailable = "not requested"
    return all_targets


def build_app(notebook: Path, app_dir: Path) -> str | None:
    """`freezer build` the notebook; None on success, else the reason."""
    proc = subprocess.run(
        [sys.executable, "-m", "freezer", "build", str(notebook), "-o", str(app_dir), "--force"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        return f"freezer build failed: {(proc.stderr or proc.stdout).strip()[:200]}"
    return None


def start_target_freezer(app_dir: Path, workdir: Path, extra_args: Sequence[str]) -> ServerProcess:
    """`freezer serve APP` signing people in by name, with a SQLite file of its own."""
    port = free_port()
    db_url = f"sqlite:///{workdir / f'freezer-{port}.db'}"
    return start_freezer(
        app_dir, port=port, db_url=db_url, extra_args=["--auth", "name", *extra_args]
    )


@contextlib.contextmanager
def workspace(
    stages: int, setup_seconds: float = 0.0, copy_of: Path | None = None
) -> Iterator[tuple[Path, Path, Path]]:
    """A temporary directory with the pipeline notebook (or a copy of the notebook `copy_of`);
    yields (notebook, app dir, dir)."""
    with tempfile.TemporaryDirectory(prefix="freezer-bench-") as tmp:
        workdir = Path(tmp)
        if copy_of is not None:
            notebook = workdir / copy_of.name
            shutil.copyfile(copy_of, notebook)
        else:
            notebook = write_pipeline_notebook(workdir / "pipeline.ipynb", stages, setup_seconds)
        yield notebook, workdir / "app", workdir


def build_for(all_targets: list[Target], notebook: Path, app_dir: Path) -> None:
    """`freezer build` the notebook when a Freezer target is wanted; a failure marks them."""
    wanted = [t for t in all_targets if t.kind == "freezer" and not t.unavailable]
    failure = build_app(notebook, app_dir) if wanted else None
    for target in wanted:
        target.unavailable = failure


# --- process figures --------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    return [pid, *child_pids(pid)]


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (kernels included)."""
    return sum(rss_bytes(p) for p in process_tree(pid))


def rss_bytes(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * PAGE_SIZE


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used by a process, its live descendants and its reaped children."""
    total = 0.0
    for index, p in enumerate(process_tree(pid)):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # utime, stime (+ cutime, cstime of reaped children, counted once at the root)
        ticks = int(fields[11]) + int(fields[12])
        if index == 0:
            ticks += int(fields[13]) + int(fields[14])
        total += ticks / CLOCK_TICKS
    return total


async def wait_quiet(
    pid: int, timeout: float = 30.0, quiet_for: float = 1.25, busy_share: float = 0.05
) -> bool:
    """Wait until the server's process tree has used less than `busy_share` of one core for
    `quiet_for` seconds in a row (pools refilled, kernels shut down); False if it stays busy.

    `quiet_for` exceeds Voila's preheat `fill_delay` (1 s), the lull before a pool refills.
    """
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        before, started = tree_cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(0.25)
        now = time.monotonic()
        if (tree_cpu_seconds(pid) - before) / (now - started) >= busy_share:
            quiet_since = now
        elif now - quiet_since >= quiet_for:
            return True
    return False


# --- statistics and output --------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct` percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, mean, p50, p95, p99, min and max of a sample."""
    return {
        "n": len(values),
        "mean": sum(values) / len(values) if values else math.nan,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "min": min(values) if values else math.nan,
        "max": max(values) if values else math.nan,
    }


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def ratio(value: float, reference: float) -> str:
    if math.isnan(value) or math.isnan(reference) or reference == 0:
        return "n/a"
    return f"{value / reference:.2f}x"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain text table on stdout."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def environment() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_json(out_dir: Path, name: str, data: dict[str, Any]) -> Path:
    """Write `<out_dir>/<name>.json` (NaN written as null)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(_nan_to_none(data), indent=2) + "\n")
    return path


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def plot_samples(
    out_dir: Path, name: str, title: str, samples: dict[str, list[float]], unit: str = "ms"
) -> Path:
    """A box plot per target of samples in seconds, drawn in `unit`; `<out_dir>/<name>.png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = 1000.0 if unit == "ms" else 1.0
    labels = [label for label, values in samples.items() if values]
    figure, axes = plt.subplots(figsize=(7, 4))
    if labels:
        axes.boxplot([[v * scale for v in samples[label]] for label in labels], showfliers=True)
        axes.set_xticks(range(1, len(labels) + 1), labels)
    axes.set_ylabel(unit)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


# --- command line -----------------------------------------------------------------------------


@dataclass
class Options:
    quick: bool
    out: Path
    freezer: bool
    pool_args: list[str]
    no_pool_args: list[str]
    only: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark accepts."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a few samples, for a smoke test")
    p.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="directory for the JSON and PNG results"
    )
    p.add_argument(
        "--voila-only", action="store_true", help="measure plain Voila only, not Freezer"
    )
    p.add_argument(
        "--only",
        default="",
        help="comma-separated servers to measure (voila, voila preheat, freezer pool, freezer)",
    )
    p.add_argument(
        "--pool-args",
        default="--pool-size=2",
        help="arguments of `freezer serve` for the pooled configuration",
    )
    p.add_argument(
        "--no-pool-args",
        default="--pool-size=0",
        help="arguments of `freezer serve` for the configuration without a pool",
    )
    return p


def options(args: argparse.Namespace) -> Options:
    return Options(
        quick=args.quick,
        out=args.out,
        freezer=not args.voila_only,
        pool_args=args.pool_args.split(),
        no_pool_args=args.no_pool_args.split(),
        only=[name.strip() for name in args.only.split(",") if name.strip()],
        extra=vars(args),
    )
