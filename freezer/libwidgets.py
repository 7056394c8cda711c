"""Which names are widget classes: ipywidgets' own, and classes other packages build on them.

ipywidgets' public names are listed here (a test keeps the lists in step with the installed
ipywidgets), so planning a notebook never imports it. Classes from other packages are resolved by
importing their modules in a subprocess with a timeout (rule 5b): importing runs the library's
code, which may be slow, print, or hang, and none of that may touch the compiler. Answers are
cached per module for the life of the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

INPUT_CLASSES = frozenset({
    "BoundedFloatText", "BoundedIntText", "Checkbox", "ColorPicker", "ColorsInput", "Combobox",
    "Controller", "DatePicker", "DatetimePicker", "Dropdown", "FileUpload", "FloatLogSlider",
    "FloatRangeSlider", "FloatSlider", "FloatText", "FloatsInput", "IntRangeSlider", "IntSlider",
    "IntText", "IntsInput", "NaiveDatetimePicker", "Password", "Play", "RadioButtons", "Select",
    "SelectMultiple", "SelectionRangeSlider", "SelectionSlider", "TagsInput", "Text", "Textarea",
    "TimePicker", "ToggleButton", "ToggleButtons", "interactive",
})
"""ipywidgets classes whose state a person sets (plus `interactive`, which holds such widgets)."""

DISPLAY_CLASSES = frozenset({
    "Accordion", "AppLayout", "Audio", "Box", "Button", "DOMWidget", "FloatProgress", "GridBox",
    "GridspecLayout", "HBox", "HTML", "HTMLMath", "Image", "IntProgress", "Label", "Output",
    "Stack", "Tab", "TwoByTwoLayout", "VBox", "Valid", "Video",
})
"""ipywidgets classes a person looks at or clicks but whose state they do not set: containers,
text, media, progress bars, buttons (a click is a callback, rule 2). Never pending."""

WIDGET_CLASSES = INPUT_CLASSES | DISPLAY_CLASSES

WIDGET_FUNCTIONS = frozenset({
    "interact", "interact_manual", "interactive_output", "link", "dlink", "jslink", "jsdlink",
    "fixed",
})
"""ipywidgets functions that take widgets as arguments without reading their state."""

WIDGET_MODULES = frozenset({"ipywidgets", "ipywidgets.widgets"})

CUSTOM_BASES = frozenset({("anywidget", "AnyWidget")})
"""Base classes of custom widgets, known without importing them: a Python class that brings its
own front-end (an ES module in `_esm`). ipywidgets' `disabled` is not theirs: Freezer can only
disable one after Next if it has a `disabled` trait of its own that its front-end honours."""

_NEVER_RESOLVED = frozenset({
    "ipywidgets", "IPython", "ipykernel", "traitlets", "nbformat", "jupyter_client", "freezer",
    "runtime", "ipython_blocking", "numpy", "pandas", "polars", "pyarrow", "scipy", "sklearn",
    "matplotlib", "seaborn", "torch", "torchvision", "tensorflow", "keras", "jax", "PIL", "cv2",
    "skimage", "requests", "tqdm", "sympy", "statsmodels", "networkx", "h5py", "tables", "dask",
    "xarray", "joblib", "sqlalchemy", "yaml",
})
"""Packages known to define no widget classes (and often slow to import): never imported."""

DEFAULT_TIMEOUT = 20.0
"""Seconds one resolving subprocess may take before its current module counts as failed."""

_MARK = "FREEZER-LIBWIDGETS "
_SCRIPT = r"""
import importlib, json, os, sys
request = json.load(sys.stdin)
sys.path[:0] = request["path"]
out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # whatever the libraries print goes to stderr, not into the answers
import ipywidgets
for module, qualnames in request["modules"]:
    answer = {"module": module, "widgets": [], "frontends": {}, "custom": {}, "error": None}
    try:
        importlib.import_module(module)
        for qualname in qualnames:
            obj = sys.modules[module]
            parts = qualname.split(".")
            for n, part in enumerate(parts):
                if not hasattr(obj, part) and isinstance(obj, type(sys)):
                    try:
                        importlib.import_module(obj.__name__ + "." + part)
                    except Exception:
                        pass
                obj = getattr(obj, part, None)
            if isinstance(obj, type) and issubclass(obj, ipywidgets.DOMWidget):
                answer["widgets"].append(qualname)
                trait = obj.class_traits().get("_model_module")
                frontend = getattr(trait, "default_value", None)
                if isinstance(frontend, str):
                    answer["frontends"][qualname] = frontend
                custom = getattr(sys.modules.get("anywidget"), "AnyWidget", None)
                if isinstance(custom, type) and issubclass(obj, custom):
                    answer["custom"][qualname] = "disabled" in obj.class_traits()
    except BaseException as exc:
        answer["error"] = f"{type(exc).__name__}: {exc}"
    out.write(MARK + json.dumps(answer) + "\n")
    out.flush()
""".replace("MARK", repr(_MARK))


@dataclass(frozen=True)
class Resolution:
    """What importing the candidate modules showed."""

    widgets: frozenset[tuple[str, str]]  # (module, qualname) pairs that are widget classes
    failures: tuple[tuple[str, str], ...]  # (module, why it could not be imported)
    frontends: tuple[tuple[str, str, str], ...] = ()  # (module, qualname, its _model_module)
    custom: tuple[tuple[str, str, bool], ...] = ()  # custom widgets: has a `disabled` trait?


@dataclass
class _ModuleAnswer:
    checked: dict[str, bool]
    error: str | None = None
    frontends: dict[str, str] = field(default_factory=dict)
    custom: dict[str, bool] = field(default_factory=dict)


_cache: dict[tuple[tuple[str, ...], str], _ModuleAnswer] = {}


def is_resolvable(module: str) -> bool:
    """Whether `module` may define widget classes worth an import (not stdlib, not listed)."""
    top = module.split(".")[0]
    return bool(top) and top not in sys.stdlib_module_names and top not in _NEVER_RESOLVED


def resolve_widget_classes(
    candidates: Iterable[tuple[str, str]],
    *,
    path: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> Resolution:
    """Find which (module, qualname) candidates are ipywidgets DOMWidget subclasses, and which
    of those are anywidget `AnyWidget` subclasses (custom widgets) with or without `disabled`.

    `path` is put in front of the subprocess's `sys.path` (e.g. the notebook's directory);
    `PYTHONPATH` is inherited. A module that fails to import, or takes longer than `timeout`
    seconds, is reported in `failures` and its names count as no widgets.
    """
    key_path = tuple(path)
    pairs = sorted(set(candidates))
    wanted: dict[str, set[str]] = {}
    for module, qualname in pairs:
        if not is_resolvable(module):
            continue
        answer = _cache.get((key_path, module))
        if answer is None or (answer.error is None and qualname not in answer.checked):
            wanted.setdefault(module, set()).add(qualname)
    todo = sorted((m, sorted(q)) for m, q in wanted.items())
    while todo:
        done, ending = _run_resolver(todo, key_path, timeout)
        for module, qualnames in todo:
            answer = _cache.setdefault((key_path, module), _ModuleAnswer({}))
            if module in done:
                found, models, customs, error = done[module]
                answer.checked.update({q: q in found for q in qualnames})
                answer.frontends.update(models)
                answer.custom.update(customs)
                answer.error = error
        remaining = [(m, q) for m, q in todo if m not in done]
        if remaining:  # the first unanswered module hung or killed the process: blame it
            _cache[(key_path, remaining[0][0])].error = ending
            remaining = remaining[1:]
        todo = remaining
    widgets: set[tuple[str, str]] = set()
    failures: list[tuple[str, str]] = []
    frontends: list[tuple[str, str, str]] = []
    custom: list[tuple[str, str, bool]] = []
    for module, qualname in pairs:
        answer = _cache.get((key_path, module))
        if answer is None:
            continue
        if answer.checked.get(qualname):
            widgets.add((module, qualname))
            if qualname in answer.frontends:
                frontends.append((module, qualname, answer.frontends[qualname]))
            if qualname in answer.custom:
                custom.append((module, qualname, answer.custom[qualname]))
        if answer.error is not None and (module, answer.error) not in failures:
            failures.append((module, answer.error))
    return Resolution(frozenset(widgets), tuple(failures), tuple(frontends), tuple(custom))


_Answers = dict[str, tuple[set[str], dict[str, str], dict[str, bool], str | None]]


def _run_resolver(
    todo: list[tuple[str, list[str]]], path: tuple[str, ...], timeout: float
) -> tuple[_Answers, str]:
    """One subprocess over `todo`: the answers it gave, and how it ended if it ended early."""
    request = json.dumps({"modules": todo, "path": list(path)})
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env=env,
    )
    try:
        out, _ = proc.communicate(request, timeout=timeout)
        ending = f"importing it ended the process (exit status {proc.returncode})"
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        ending = f"import did not finish within {timeout:g} s"
    done: _Answers = {}
    for line in out.splitlines():
        if line.startswith(_MARK):
            answer = json.loads(line[len(_MARK):])
            done[answer["module"]] = (set(answer["widgets"]), answer["frontends"],
                                      answer["custom"], answer["error"])
    return done, ending
