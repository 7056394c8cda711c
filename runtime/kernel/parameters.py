"""A run's binding: what `configure()` gives the kernel, the seed, and the run's parameters.

The server binds a kernel to a run with `runner.configure(...)` (the code of
:func:`runtime.protocol.configure_code`): a :class:`RunConfig`. Before stage 0 the random
generators are seeded with the run's seed (:func:`seed`). The run's parameter values are set
right after the notebook's `parameters` cell ran, over its defaults, as papermill does — or when
the kernel is configured, if that cell already ran ahead as a warm cell (:func:`set_parameters`).
Only names the notebook declares are set (the manifest's parameters and what the cell assigns),
and `freezer_user` / `freezer_run` (the person, the run's id) when the notebook declares them.
"""

from __future__ import annotations

import ast
import logging
import random
from dataclasses import dataclass
from typing import Any

from runtime import manifest as mf
from runtime.kernel.capture import Capture
from runtime.kernel.failure import Failure

log = logging.getLogger("freezer.runner")

PARAMETERS_TAG = mf.Tag.PARAMETERS
RUN_NAMES = mf.RUN_PARAMETERS


@dataclass(frozen=True)
class RunConfig:
    """What `configure()` binds this kernel to."""

    run_id: str
    seed: int
    params: dict[str, Any]
    user: str
    show_tracebacks: bool
    stage_timeout: float  # seconds a stage may run before it is interrupted; 0: no limit
    holds: tuple[int, ...] = ()  # the stages whose next Next a replay ignores (went back)


def declared_names(source: str) -> set[str]:
    """Top-level names a `parameters` cell assigns (empty when it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def parameters_cell(app: mf.Manifest) -> mf.Cell | None:
    """The notebook's `parameters` cell, if it has one."""
    return next((c for s in app.stages for c in s.cells if PARAMETERS_TAG in c.tags), None)


def parameter_values(app: mf.Manifest, config: RunConfig) -> dict[str, Any]:
    """The values to set in the kernel: the run's parameters the notebook declares, then the
    run's own names (person, run id) it declares; the others are ignored, with a warning."""
    cell = parameters_cell(app)
    declared = {p.name for p in app.parameters}
    if cell is not None:
        declared |= declared_names(cell.source)
    values = {k: v for k, v in config.params.items() if k in declared}
    ignored = sorted(set(config.params) - declared)
    if ignored:
        log.warning("parameters not declared by the notebook, ignored: %s", ignored)
    run_values = dict(zip(RUN_NAMES, (config.user, config.run_id), strict=True))
    values.update({k: v for k, v in run_values.items() if k in declared})
    return values


def set_parameters(
    shell: Any, capture: Capture, app: mf.Manifest, config: RunConfig
) -> Failure | None:
    """Assign this run's parameter values in the kernel (outputs discarded)."""
    values = parameter_values(app, config)
    if not values:
        return None
    code = "# Parameters of this run, injected by Freezer\n" + "".join(
        f"{name} = {value!r}\n" for name, value in values.items() if name.isidentifier()
    )
    with capture.cell(code, None):
        result = shell.run_cell(code, store_history=False, silent=True)
    if result.success:
        return None
    error = f"could not set this run's parameters: {result.error_in_exec!r}"
    return Failure(error, code, None, "This step failed: " + error)


def seed(config: RunConfig | None) -> None:
    """Seed `random` and, if installed, numpy's global generator with the run's seed."""
    if config is None:
        return
    random.seed(config.seed)
    try:
        import numpy
    except ImportError:
        return
    numpy.random.seed(config.seed % 2**32)
