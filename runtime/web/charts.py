"""Server-side charts for the admin page: matplotlib (Agg, no pyplot) rendered to inline SVG.

Nothing here fetches anything: the SVG is self-contained text, placed in the page as is. Labels
are drawn as SVG `<text>` (matplotlib escapes them) and never parsed as mathtext, so a value a
person typed, `$` signs included, shows as typed.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

BAR_COLOR = "#4c72b0"
DONE_COLOR = "#55a868"
STYLE: dict[Any, Any] = {  # Any: matplotlib types the keys as a Literal of every rc name
    "svg.fonttype": "none",  # text stays text: smaller, selectable, scales with the page
    "svg.hashsalt": "freezer",  # stable ids, so the same data gives the same SVG
    "text.parse_math": False,
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}

# rc_context changes matplotlib's process-wide settings while a chart renders; charts render in
# worker threads, so one at a time.
_render_lock = threading.Lock()


def figure_to_svg(fig: Figure) -> str:
    """The figure as an `<svg>` element (no XML prolog or doctype), ready to inline in HTML."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def stage_funnel_svg(titles: Sequence[str], reached: Sequence[int], finished: int) -> str:
    """Horizontal bars: how many runs reached each stage, and how many finished.

    `titles[i]` labels stage i, `reached[i]` counts the runs whose current stage is i or later.
    """
    labels = [f"{i + 1}. {title}" for i, title in enumerate(titles)] + ["Finished"]
    counts = [*reached, finished]
    colors = [BAR_COLOR] * len(reached) + [DONE_COLOR]
    with _render_lock, matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.0, 0.9 + 0.4 * len(labels)), layout="constrained")
        ax = fig.add_subplot()
        positions = list(range(len(labels)))
        bars = ax.barh(positions, counts, color=colors)
        ax.set_yticks(positions, labels=[shorten(label) for label in labels])
        ax.invert_yaxis()
        ax.bar_label(bars, padding=3)
        ax.set_xlabel("runs")
        ax.set_xlim(0, max([*counts, 1]) * 1.15)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return figure_to_svg(fig)


def histogram_svg(name: str, values: Sequence[float]) -> str:
    """The distribution of one numeric result across runs."""
    finite = [v for v in values if math.isfinite(v)]
    with _render_lock, matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(4.5, 2.6), layout="constrained")
        ax = fig.add_subplot()
        if len(set(finite)) <= 1:
            # one distinct value: a histogram would be a single full-width bar with no scale
            label = str(finite[0]) if finite else "none"
            ax.bar([label], [len(finite)], color=BAR_COLOR, width=0.3)
            ax.set_xlim(-1, 1)
        else:
            ax.hist(finite, bins=min(20, max(5, len(finite) // 3)), color=BAR_COLOR)
        ax.set_title(shorten(name))
        ax.set_ylabel("runs")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        return figure_to_svg(fig)


def shorten(text: str, limit: int = 40) -> str:
    """A label short enough for an axis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
