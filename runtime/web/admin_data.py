"""The data and HTML of `/admin`: runs, how far people got, the collected results, charts.

:func:`load_page` reads what the page shows from the store (the export rows with each declared
parameter's default, the app versions' stage titles, divergences, work queues) and draws the
charts off the event loop; :func:`render_page` turns it into HTML. Nothing here knows about
requests: the handlers of :mod:`runtime.web.admin` call these two. Everything a person typed
reaches the page through Jinja2's autoescape; charts are inline SVG rendered by
:mod:`runtime.web.charts`, so the page makes no request to anywhere.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from runtime.kernel.values import is_media_reference
from runtime.store.export_format import stage_position
from runtime.store.exporting import parameter_defaults, with_default_params
from runtime.store.queue_export import queue_report
from runtime.store.store import Store
from runtime.web import charts

TEMPLATES = Path(__file__).parent / "templates"

VALUE_LIMIT = 300
"""Characters of a value shown in a table cell; the exports carry every value whole."""

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class Funnel:
    """How many runs of one app version reached each stage."""

    app_id: str
    titles: list[str]
    reached: list[int]
    finished: int
    runs: int
    svg: Markup = Markup("")


@dataclass
class NumericResult:
    """One collected result whose values are all numbers: a summary and a chart."""

    name: str
    values: list[float]
    svg: Markup = Markup("")

    @property
    def summary(self) -> dict[str, str]:
        """Count, min, mean and max, formatted for the page."""
        vals = self.values
        return {
            "runs": str(len(vals)),
            "min": fmt_number(min(vals)),
            "mean": fmt_number(sum(vals) / len(vals)),
            "max": fmt_number(max(vals)),
        }


@dataclass
class AdminPage:
    """Everything `admin.html` shows, computed from the export rows."""

    title: str
    rows: list[dict[str, Any]]
    stage_titles: dict[str, list[str]]
    run_filter: RunFilter = field(default_factory=lambda: RunFilter())
    funnels: list[Funnel] = field(default_factory=list)
    result_names: list[str] = field(default_factory=list)
    numeric: list[NumericResult] = field(default_factory=list)
    divergences: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> where
    queues: list[dict[str, Any]] = field(default_factory=list)  # runtime.store.queue_export reports

    def diverged_at(self, row: dict[str, Any]) -> str:
        """`step 2 · Label (journal event 7, stage_finished)` for a run replay stopped on."""
        found = self.divergences.get(row["run_id"], {})
        stage, where = found.get("stage"), f"journal event {found.get('seq')}, {found.get('event')}"
        titles = self.stage_titles.get(row["app_id"], [])
        if isinstance(stage, int):
            title = f" · {titles[stage]}" if 0 <= stage < len(titles) else ""
            return f"step {stage + 1}{title} ({where})"
        return where

    def history_lines(self, row: dict[str, Any]) -> list[str]:
        """`pass 1: reached step 3 · Label; went back to step 1 · Pick` for each pass of a
        run that went back (its journal keeps every pass; the tables show the last)."""
        titles = self.stage_titles.get(row["app_id"], [])

        def step(index: Any) -> str:
            if not isinstance(index, int):
                return "?"
            title = f" · {titles[index]}" if 0 <= index < len(titles) else ""
            return f"step {index + 1}{title}"

        lines = []
        for one in row.get("history") or []:
            line = f"pass {one['pass']}: reached {step(one['reached'])}"
            back = one.get("went_back")
            if back:
                line += f"; went back to {step(back.get('stage'))} ({fmt_time(back.get('at'))})"
            lines.append(line)
        return lines

    @property
    def shown(self) -> list[dict[str, Any]]:
        """The runs the tables show (the filter applied)."""
        return [row for row in self.rows if self.run_filter.keeps(row)]

    @property
    def users(self) -> list[str]:
        """Everyone who has a run, for the user filter."""
        return sorted({row["user"] for row in self.rows})

    @property
    def counts(self) -> dict[str, int]:
        """How many runs have each status."""
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts

    def stage_label(self, row: dict[str, Any]) -> str:
        """`2/3 · Label the samples` for a run's current stage."""
        titles = self.stage_titles.get(row["app_id"], [])
        position = stage_position(row)
        if 0 <= row["stage"] < len(titles):
            return f"{position} · {titles[row['stage']]}"
        return position


def fmt_number(value: float) -> str:
    """A number short enough for a table cell."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def fmt_value(value: Any, limit: int = VALUE_LIMIT) -> str:
    """A collected value or snapshot as text (escaped later by the template), cut at `limit`."""
    text = full_text(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def full_text(value: Any) -> str:
    """A value as text, whole; media references read `image/png, 40.3 KB, sha256 ab12cd34…`."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return fmt_number(value)
    if is_media_reference(value):
        return fmt_media(value)
    return json.dumps(readable(value), ensure_ascii=False, separators=(", ", ": "),
                      sort_keys=True)


def readable(value: Any) -> Any:
    """`value` with every media reference in it replaced by its one-line text."""
    if is_media_reference(value):
        return fmt_media(value)
    if isinstance(value, list):
        return [readable(item) for item in value]
    if isinstance(value, dict):
        return {key: readable(item) for key, item in value.items()}
    return value


def fmt_media(reference: dict[str, Any]) -> str:
    """A media reference as `image/png, 40.3 KB, sha256 ab12cd34…`."""
    size = reference["bytes"]
    small = not isinstance(size, int) or size < 1000
    amount = f"{size} bytes" if small else f"{size / 1000:.1f} KB"
    return f"{reference['media']}, {amount}, sha256 {str(reference['sha256'])[:8]}…"


def show_value(value: Any) -> Markup:
    """A value for a table cell: whole when short, else its start with the whole one click away."""
    text = full_text(value)
    if len(text) <= VALUE_LIMIT:
        return escape(text)
    return Markup(
        '<details class="long-value"><summary>{}</summary><div class="whole">{}</div></details>'
    ).format(fmt_value(value), text)


def fmt_pairs(values: dict[str, Any]) -> Markup:
    """`name = value; ...` for a snapshot or a run's results (long values folded)."""
    return Markup("; ").join(
        Markup("{} = {}").format(name, show_value(value)) for name, value in values.items()
    )


def fmt_inputs(row: dict[str, Any]) -> Markup:
    """What a run's person chose at each finished stage, stage by stage."""
    snapshots = row.get("snapshots") or {}
    return Markup("; ").join(
        fmt_pairs(snapshots[index]) for index in sorted(snapshots, key=int) if snapshots[index]
    )


def fmt_time(value: str | None) -> str:
    """An ISO timestamp from an export row as `2026-11-23 12:03 UTC`."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def is_number(value: Any) -> bool:
    """A JSON number (bool is not one here) that a chart can place."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class RunFilter:
    """Which runs the runs table shows: a status and a user, or all (empty)."""

    status: str = ""
    user: str = ""

    def keeps(self, row: dict[str, Any]) -> bool:
        """Whether `row` passes the filter."""
        return (not self.status or row["status"] == self.status) and (
            not self.user or row["user"] == self.user
        )


def build_page(
    title: str, rows: list[dict[str, Any]], stage_titles: dict[str, list[str]]
) -> AdminPage:
    """The page's data without charts: funnels per app version, result columns, numeric results."""
    page = AdminPage(title=title, rows=rows, stage_titles=stage_titles)
    by_app: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_app.setdefault(row["app_id"], []).append(row)
    for app_id, app_rows in by_app.items():
        total = max([row["stages"] for row in app_rows] + [row["stage"] + 1 for row in app_rows])
        titles = list(stage_titles.get(app_id, []))[:total]
        titles += [f"Step {i + 1}" for i in range(len(titles), total)]
        reached = [sum(1 for row in app_rows if row["stage"] >= i) for i in range(total)]
        finished = sum(1 for row in app_rows if row["status"] == "finished")
        page.funnels.append(Funnel(app_id, titles, reached, finished, len(app_rows)))
    page.result_names = list(dict.fromkeys(name for row in rows for name in row["results"]))
    for name in page.result_names:
        values = [row["results"][name] for row in rows if row["results"].get(name) is not None]
        if values and all(is_number(v) for v in values):
            page.numeric.append(NumericResult(name, [float(v) for v in values]))
    return page


def draw_charts(page: AdminPage) -> None:
    """Render the page's charts (CPU-bound: called in a worker thread)."""
    for funnel in page.funnels:
        funnel.svg = Markup(charts.stage_funnel_svg(funnel.titles, funnel.reached, funnel.finished))
    for result in page.numeric:
        result.svg = Markup(charts.histogram_svg(result.name, result.values))


def render_page(
    page: AdminPage, export_base: str, runs_base: str | None = None, base_url: str = "/"
) -> str:
    """The `/admin` HTML; with `runs_base`, each run links to its files."""
    return templates.get_template("admin.html").render(
        page=page, export_base=export_base, fmt_value=fmt_value, fmt_time=fmt_time,
        fmt_pairs=fmt_pairs, fmt_inputs=fmt_inputs, show_value=show_value,
        runs_base=runs_base, base_url=base_url,
    )


async def load_page(store: Store, title: str, run_filter: RunFilter | None = None) -> AdminPage:
    """Read the runs and their app versions' stage titles from the store, then draw the charts."""
    rows = await store.export_rows()
    rows = with_default_params(rows, await parameter_defaults(store, (r["app_id"] for r in rows)))
    stage_titles: dict[str, list[str]] = {}
    for app_id in dict.fromkeys(row["app_id"] for row in rows):
        manifest = await store.get_manifest(app_id)
        if manifest is not None:
            stage_titles[app_id] = [stage.title for stage in manifest.stages]
    page = build_page(title, rows, stage_titles)
    page.divergences = await store.divergences(
        [row["run_id"] for row in rows if row["status"] == "diverged"]
    )
    page.queues = [await queue_report(store, name) for name in await store.queue_names()]
    page.run_filter = run_filter or RunFilter()
    await asyncio.to_thread(draw_charts, page)
    return page
