"""What the person saw that their actions apply to, as a digest replay can compare.

The runner attaches a digest to each `stage_ready`, `stage_failed` and `stage_finished` report
(see :func:`stage_digest`): the states of the widgets the stage waits on and the text of the
stage's outputs. Replay compares each digest the rebuilt kernel reports with the one the journal
recorded at the same point (:func:`differences`); the first mismatch means the notebook now
shows something else than the person acted on, and replay stops before applying their actions
to it (`runtime.runs.replay`).

A digest must be equal on a faithful replay, so it leaves out what differs between two kernels
running the same code on the same actions: memory addresses, ids, clock times and durations,
standard error (progress bars, warnings, log lines), images and rich HTML, the outputs of the
notebook's own `Output` widgets, and the values of plain data that callbacks write. What it
covers and what not is documented in `docs/runner.md` ("What replay can and cannot reproduce").

Computing needs ipywidgets (kernel side); comparing is plain data (server side).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

DIGEST_VERSION = 2
"""Bump on any change of what a digest covers: digests of another version are not compared, so
journals recorded before the change never false-alarm after it. 2: a custom widget without a
`value` is digested with its synced traits (:func:`runtime.kernel.values.synced_traits`)."""

WIDGET_TRAITS = (
    "description", "value", "label", "_options_labels", "index", "min", "max", "step",
    "placeholder", "tooltip", "tooltips", "icon", "icons",
)
"""The widget traits that say what a widget shows and holds (not its look or its ids). A custom
widget without a `value` (an anywidget) also gives its synced traits, under `traits`: what its
front-end and the person share, except binary data (images are not compared)."""

EXCERPT_CHARS = 240
SUMMARY_CHARS = 160
_DEPTH = 20

_VOLATILE = (
    # memory addresses: <Foo object at 0x7f3a2c1d5e80>
    (re.compile(r"0x[0-9a-fA-F]{4,}"), "0x…"),
    # uuids, and long hex ids (uuid4().hex, widget model ids)
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
     "<id>"),
    (re.compile(r"\b[0-9a-fA-F]{24,}\b"), "<id>"),
    # dates with a clock time (datetime.now()), and clock times with seconds
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?(Z|[+-]\d{2}:?\d{2})?"),
     "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}([.,]\d+)?\b"), "<time>"),
    # durations and rates: `done in 2.31 s`, `CPU times: user 3 ms`, `12.5it/s`
    (re.compile(
        r"\b\d+(\.\d+)?([eE][+-]?\d+)?\s?(ns|µs|μs|us|ms|s|sec|secs|seconds?|mins?|minutes?|"
        r"h|hrs?|hours?|it/s|s/it)(?![\w/])"
    ), "<duration>"),
)
_IPYTHON_DISPLAY = re.compile(r"^<IPython\.core\.display\.\w+ object>$")


# --- computing (kernel side) ------------------------------------------------------------


def stage_digest(
    namespace: Mapping[str, Any], names: Iterable[str], outputs: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """The digest of a stage: the widgets bound to `names` in `namespace`, and `outputs`.

    `{"v": DIGEST_VERSION, "widgets": {name: hash}, "text": hash, "seen": {name: summary},
    "excerpt": start of the text}`; the hashes are compared, the rest is for people. Never
    raises: a digest that cannot be made is `{"v": 0, "error": ...}`, which is not compared.
    """
    try:
        return _stage_digest(namespace, names, outputs)
    except Exception as exc:  # noqa: BLE001 - reporting the stage matters more than its digest
        return {"v": 0, "error": f"{type(exc).__name__}: {exc}"[:SUMMARY_CHARS]}


def _stage_digest(
    namespace: Mapping[str, Any], names: Iterable[str], outputs: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    widgets: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in names:
        state = widget_state(namespace.get(name))
        widgets[name] = _hash(state)
        seen[name] = _cut(summary(state), SUMMARY_CHARS)
    text = output_text(outputs)
    return {
        "v": DIGEST_VERSION, "widgets": widgets, "text": _hash(text), "seen": seen,
        "excerpt": _cut(text, EXCERPT_CHARS),
    }


def widget_state(value: Any, depth: int = 0) -> Any:
    """What a widget (or a container or collection of widgets) shows, as JSON; plain data and
    anything else is None (callbacks may write times or ids into it)."""
    import ipywidgets

    from runtime.kernel.values import is_custom

    if depth > _DEPTH:
        return None
    if isinstance(value, ipywidgets.Widget):
        state: dict[str, Any] = {"type": type(value).__name__}
        for trait in WIDGET_TRAITS:
            if value.has_trait(trait):
                state[trait] = _plain(getattr(value, trait), depth + 1)
        if isinstance(value, ipywidgets.Box):
            state["children"] = [widget_state(child, depth + 1) for child in value.children]
        elif is_custom(value):
            state["traits"] = _custom_traits(value, depth)
        return state
    if isinstance(value, (list, tuple)):
        return [widget_state(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): widget_state(item, depth + 1) for key, item in value.items()}
    return None


def _custom_traits(widget: Any, depth: int) -> dict[str, Any]:
    """A custom widget's synced traits as JSON: widgets by their state, JSON data masked, not
    binary data nor values that are not JSON (see :func:`runtime.kernel.values.is_json`)."""
    import ipywidgets

    from runtime.kernel.values import BINARY, is_json, synced_traits

    traits: dict[str, Any] = {}
    for name, value in synced_traits(widget).items():
        if isinstance(value, ipywidgets.Widget):
            traits[name] = widget_state(value, depth + 1)
        elif not isinstance(value, BINARY) and is_json(value):
            traits[name] = _plain(value, depth + 1)
    return traits


def output_text(outputs: Iterable[Mapping[str, Any]]) -> str:
    """The text of a stage's outputs that a faithful replay reproduces, volatile parts masked.

    Standard output, the plain-text form of displays and results (the text of IPython's
    `HTML`/`Markdown` objects), and the name and message of errors; not standard error,
    images or other rich forms, nor tracebacks.
    """
    parts: list[str] = []
    for output in outputs:
        kind = output.get("output_type")
        if kind == "stream" and output.get("name") == "stdout":
            parts.append(str(output.get("text", "")))
        elif kind in ("display_data", "execute_result"):
            parts.append(_display_text(output.get("data") or {}))
        elif kind == "error":
            parts.append(f"{output.get('ename', '')}: {output.get('evalue', '')}")
    return mask_volatile("\n".join(part for part in parts if part))


def mask_volatile(text: str) -> str:
    """`text` with memory addresses, ids, clock times and durations replaced by placeholders."""
    for pattern, placeholder in _VOLATILE:
        text = pattern.sub(placeholder, text)
    return text


def summary(state: Any) -> str:
    """A widget state in one short line: `IntSlider 'item 0' = 6`."""
    if isinstance(state, list):
        return "[" + ", ".join(summary(item) for item in state if item is not None) + "]"
    if not isinstance(state, dict):
        return "(not a widget)"
    if "type" not in state:
        return "{" + ", ".join(f"{k}: {summary(v)}" for k, v in state.items()) + "}"
    text = str(state["type"])
    if state.get("description"):
        text += f" {state['description']!r}"
    if "value" in state:
        text += f" = {state['value']!r}"
    if "_options_labels" in state:
        text += f" of {list(state['_options_labels'])!r}"
    if state.get("traits"):
        text += " " + ", ".join(
            f"{k}={summary(v) if isinstance(v, dict) and 'type' in v else _cut(repr(v), 40)}"
            for k, v in state["traits"].items()
        )
    if state.get("children"):
        text += " " + summary(state["children"])
    return text


def _display_text(data: Mapping[str, Any]) -> str:
    plain = _join(data.get("text/plain", ""))
    if _IPYTHON_DISPLAY.match(plain.strip()):
        for mime in ("text/markdown", "text/html", "text/latex"):
            if mime in data:
                return _join(data[mime])
    return plain


def _join(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _plain(value: Any, depth: int) -> Any:
    """A trait value as JSON (tuples as lists, odd objects by their masked repr)."""
    if depth > _DEPTH:
        return None
    if isinstance(value, str):
        return mask_volatile(value)  # `description=f'started {datetime.now()}'`
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item, depth + 1) for key, item in value.items()}
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        try:
            return _plain(tolist(), depth + 1)
        except Exception:  # noqa: BLE001 - an odd object: fall back to its repr
            pass
    return mask_volatile(repr(value))


def _hash(value: Any) -> str:
    data = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- comparing (server side) ------------------------------------------------------------


def differences(expected: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """How the digest `found` differs from `expected`, one line each; empty when they agree.

    A digest of another version (or none) is not compared: no difference.
    """
    if expected.get("v") != DIGEST_VERSION or found.get("v") != DIGEST_VERSION:
        return []
    lines: list[str] = []
    want, got = expected.get("widgets") or {}, found.get("widgets") or {}
    want_seen, got_seen = expected.get("seen") or {}, found.get("seen") or {}
    for name in sorted(set(want) | set(got)):
        if want.get(name) != got.get(name):
            lines.append(
                f"{name}: expected {want_seen.get(name, '(none)')}, "
                f"found {got_seen.get(name, '(none)')}"
            )
    if expected.get("text") != found.get("text"):
        lines.append(
            f"output text: expected {expected.get('excerpt', '')!r}, "
            f"found {found.get('excerpt', '')!r}"
        )
    return lines
