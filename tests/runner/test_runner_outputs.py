"""What lands in a stage's Output, and the run binding: seed, parameters, collected results."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from runner.conftest import BOOTSTRAP, code, configure, md, stage
from runtime.manifest import Parameter
from tests.support.frontend import Frontend

StartApp = Callable[[Path], Awaitable[Frontend]]
MakeApp = Callable[..., Path]


async def test_outputs_are_captured_in_the_kernel_like_jupyter_shows_them(
    make_app: MakeApp, start_app: StartApp
) -> None:
    app = make_app([
        stage(0, "Everything", [
            md("# Outputs\n\nSome *emphasis* and a <b>tag</b>."),
            md("Removed markdown", "remove-cell"),
            code("print('plain print')\nimport sys; print('to stderr', file=sys.stderr)"),
            code("print('input hidden, output shown')", "hide-input"),
            code("print('hidden 1')", "remove-output"),
            code("print('hidden 2')", "hide-output"),
            code("print('hidden 3')", "remove-cell"),
            code("6 * 7"),
            code("'silenced';"),
            code("from IPython.display import display, clear_output, HTML\n"
                 "print('cleared away')\nclear_output()\nprint('after clear')"),
            code("h = display(HTML('<i>first</i>'), display_id=True)\n"
                 "h.update(HTML('<i>second</i>'))"),
            code("%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                 "plt.plot([1, 2, 3])\nplt.show()"),
            code("from ipywidgets import interact\n"
                 "@interact(x=5)\ndef f(x):\n    print('interact says', x)"),
            code("!echo from a shell"),
        ]),
    ])
    fe = await start_app(app)
    reply = await fe.execute_ok(BOOTSTRAP)
    await fe.wait_for(lambda: "make your choices" in fe.status() or "Done" in fe.status())
    outputs = fe.stage_outputs(0)
    text = fe.stage_text(0)
    assert "<h1>Outputs</h1>" in text and "<em>emphasis</em>" in text and "<b>tag</b>" in text
    assert "Removed markdown" not in text
    assert "plain print" in text and "to stderr" in text
    assert "input hidden, output shown" in text
    assert not any(f"hidden {i}" in text for i in (1, 2, 3))
    results = [o for o in outputs if o["output_type"] == "execute_result"]
    assert [r["data"]["text/plain"] for r in results[:1]] == ["42"]
    assert "silenced" not in text
    assert "cleared away" not in text and "after clear" in text
    assert "<i>second</i>" in text and "<i>first</i>" not in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert "from a shell" in text
    # interact's first call lands in interact's own Output (in the kernel, like the stage
    # outputs), not in the stage output.
    assert "interact says" not in text
    interact_outputs = [
        s["outputs"] for s in fe.models.values()
        if s["_model_name"] == "OutputModel" and s.get("outputs") and s["outputs"] != outputs
    ]
    assert interact_outputs == [[{"output_type": "stream", "name": "stdout",
                                  "text": "interact says 5\n"}]]
    # Nothing reached the page outside the widgets, and no error was published.
    assert not [
        m for m in fe.iopub
        if m["msg_type"] in ("stream", "error", "execute_result", "clear_output")
    ]
    shown = fe.iopub_outputs(reply["parent_header"]["msg_id"])
    assert [m["msg_type"] for m in shown] == ["display_data"]  # the root widget, nothing else
    # Under plain Voila or JupyterLab (no configure) the status line says nothing is saved.
    assert "Progress is not saved" in fe.status()
    assert fe.events == [] and fe.run_comm is None


async def test_same_seed_same_random_numbers(make_app: MakeApp, start_app: StartApp) -> None:
    app = make_app([
        stage(0, "Draw", [
            code("import random, numpy\nprint(random.random(), numpy.random.rand())"),
        ]),
    ])

    async def draw(seed: int) -> str:
        fe = await start_app(app)
        await fe.execute_ok(configure(seed=seed))
        await fe.execute_ok(BOOTSTRAP)
        await fe.wait_for(lambda: fe.has_event("finished"))
        return fe.stage_text(0)

    first, second, other = await asyncio.gather(draw(1234), draw(1234), draw(99))
    assert first == second
    assert first != other


async def test_parameters_are_overridden_and_results_collected(
    make_app: MakeApp, start_app: StartApp
) -> None:
    app = make_app(
        [
            stage(0, "Setup", [
                code("shard = 0\nlabel = 'x'\nfreezer_user = ''", "parameters"),
                code("print(shard, label, freezer_user, 'freezer_run' in globals())"),
                code("import numpy as np\nscore = {'f1': 0.5, 'ids': np.arange(3), 'nan': np.nan}",
                     "collect:score"),
                code("score = 'changed later'"),
            ]),
            stage(1, "Second", [code("final = shard * 10")], collect=["final"]),
        ],
        parameters=[
            Parameter("shard", 0, "int"), Parameter("label", "x", "str"),
            Parameter("freezer_user", "", "str"),
        ],
    )
    fe = await start_app(app)
    await fe.execute_ok(configure(params={"shard": 3, "undeclared": 1}, user="bob"))
    await fe.execute_ok(BOOTSTRAP)
    await fe.wait_for(lambda: fe.has_event("stage_ready", stage=0))
    assert "3 x bob False" in fe.stage_text(0)
    collected = fe.has_event("collected")
    assert collected == {
        "event": "collected", "stage": 0, "name": "score",
        "value": {"f1": 0.5, "ids": [0, 1, 2], "nan": "nan"},
    }
    json.dumps(collected, allow_nan=False)
    fe.click(fe.next_button() or "")
    await fe.wait_for(lambda: fe.has_event("finished"))
    assert fe.has_event("collected", stage=1) == {
        "event": "collected", "stage": 1, "name": "final", "value": 30,
    }
    assert await fe.execute_text("print('undeclared' in globals())") == "False\n"
