"""Checks of one cell on its own: its tags, and what its code does that cannot work in an app.

The planner (:mod:`freezer.plan`) calls these for each cell it keeps; the checks that depend on
the cells around one (a `freeze:warm` cell after other code, a `collect:NAME` before NAME is
bound) stay with the planner, which knows the stages built so far.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

from freezer.facts import CellFacts
from freezer.plandata import Severity
from runtime.manifest import COLLECT_PREFIX, Tag

FREEZE_TAGS = frozenset({Tag.BREAK, Tag.JOIN, Tag.SKIP, Tag.WARM, Tag.PARAMETERS})
FOREIGN_TAGS = frozenset({
    "remove-cell", "hide-input", "hide-output", "remove-input", "remove-output", "init_cell",
    Tag.INJECTED_PARAMETERS,
})
"""Tags of other Jupyter tools that the app keeps (the runner hides what they ask to hide)."""
_KNOWN = sorted(str(tag) for tag in FREEZE_TAGS | FOREIGN_TAGS)
_CONFLICTS = ((Tag.BREAK, Tag.JOIN), (Tag.WARM, Tag.PARAMETERS), (Tag.SKIP, Tag.PARAMETERS))
"""Pairs of tags that contradict each other; the first wins."""

Note = Callable[[str, Severity, int | None, int | None, str], None]
"""`note(code, severity, cell, line, message)`: report a diagnostic."""


def cell_tags(index: int, metadata: object, note: Note) -> tuple[str, ...]:
    """The tags of cell `index` (from its metadata), reporting unknown and contradicting ones."""
    raw = metadata.get("tags", []) if isinstance(metadata, dict) else []
    tags = tuple(str(t) for t in raw or [])
    for tag in tags:
        if tag.startswith(COLLECT_PREFIX):
            if not tag[len(COLLECT_PREFIX):].isidentifier():
                note("unknown-tag", "warning", index, None,
                     f"tag {tag!r}: collect:NAME needs a Python name after the colon")
        elif tag not in FREEZE_TAGS and tag not in FOREIGN_TAGS:
            close = difflib.get_close_matches(tag, _KNOWN, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            note("unknown-tag", "warning", index, None,
                 f"tag {tag!r} means nothing to Freezer and is ignored{hint}")
    for first, second in _CONFLICTS:
        if first in tags and second in tags:
            note("tag-conflict", "warning", index, None,
                 f"tags {first} and {second} contradict each other; {first} wins")
    if Tag.INJECTED_PARAMETERS in tags and Tag.SKIP not in tags:
        note("injected-parameters", "warning", index, None,
             "this cell was injected by papermill; in the app it runs after the per-run "
             "parameters and overrides them: delete it or tag it freeze:skip")
    return tags


def collected_names(tags: Sequence[str]) -> tuple[str, ...]:
    """The names of the well-formed `collect:NAME` tags, in order."""
    names = (tag[len(COLLECT_PREFIX):] for tag in tags if tag.startswith(COLLECT_PREFIX))
    return tuple(name for name in names if name.isidentifier())


def check_facts(facts: CellFacts, note: Note) -> None:
    """What the analysis found in code cell `facts.index` that the app cannot run as written."""
    index = facts.index
    if facts.syntax_error is not None:
        line, message = facts.syntax_error
        note("syntax-error", "error", index, line, f"cannot parse this cell: {message}")
    if facts.too_deep:
        note("too-deep", "warning", index, None,
             "this cell nests too deeply to analyse completely; if a later cell needs "
             "what the person does here, tag it freeze:break")
    for line, top_level, what in facts.stdin:
        if top_level:
            note("stdin-input", "error", index, line,
                 f"{what} waits for typed input, which an app cannot give; "
                 "ask with a widget (ipywidgets.Text) instead")
        else:
            note("stdin-input", "warning", index, line,
                 f"{what} in a function: if it runs in the app it fails, "
                 "since an app cannot give typed input; ask with a widget instead")
    for line, text in facts.pip_lines:
        note("pip-install", "warning", index, line,
             f"{text!r} does not run in the app (it is commented out): install the "
             "package where the app is served")
    if facts.markers and facts.code_after_marker is not None:
        note("block-not-last", "warning", index, facts.code_after_marker,
             f"code after {facts.markers[-1].magic} runs before the person continues; "
             "move it to the next cell")
    for line, name in facts.undisableable:
        note("custom-widget-no-disabled", "warning", index, line,
             f"{name} is a custom widget (anywidget) with no `disabled` trait, so after Next "
             "the person can still change it on the page though the app no longer reads it: "
             "add `disabled = traitlets.Bool(False).tag(sync=True)` and have its front-end "
             "ignore input while `model.get(\"disabled\")` is true (docs/custom-widgets.md)")
