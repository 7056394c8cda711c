"""Widget message round trip: a slider update to the resulting state update, Voila vs Freezer.

With `--custom`, the measured widget is a custom widget (anywidget, docs/custom-widgets.md): the
page sends it a custom message (`model.send({n: i})` in a browser) and waits for the widget's
answer, which its Python `on_msg` handler sends back (`self.send({"n": i})`); on Freezer's
server the message is journaled before it reaches the kernel, as a slider update is.

One person per server moves the first stage's slider to a new value and waits for the label the
slider's callback updates; the time in between is one round trip (websocket, server, kernel,
callback, back). On Freezer's server the update also goes through the write-ahead journal.
Both servers run at once and are measured in alternating batches, so that both see the same
machine. p50/p95/p99, and the difference to plain Voila.

After each update the person waits for the kernel to go idle and pauses (`--pause-ms`, 100 by
default, a slider dragged in steps). An update sent less than ~40 ms after the kernel's previous
`idle` takes ~48 ms instead of ~8 ms, on both servers alike: the kernel sends its replies
within a millisecond (header dates), but after the first (`busy`) the others reach the client
~40 ms later, so the delay appears to be in jupyter_server's forwarding of iopub messages (the
same updates straight to the kernel with jupyter_client take ~5 ms back to back; TCP_NODELAY on
the server's sockets does not change it). `--pause-ms 0` measures that case.

    .venv/bin/python benchmarks/roundtrip.py [--updates 500] [--pause-ms 100] [--custom] [--quick]
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import nbformat
from common import (
    ClientError,
    PageSession,
    Person,
    Target,
    build_for,
    environment,
    label_text,
    ms,
    options,
    parser,
    plot_samples,
    print_table,
    ratio,
    slider_description,
    stage_ready,
    summarize,
    targets,
    workspace,
    write_json,
)

BATCH = 10
WARM_UP = 20
UPDATE_TIMEOUT = 30.0

ECHO_CELL = """\
import anywidget
import traitlets


class Echo(anywidget.AnyWidget):
    \"\"\"Answers each custom message with its `n`.\"\"\"

    _esm = "export default { render({ model, el }) { el.textContent = 'echo'; } };"
    disabled = traitlets.Bool(False).tag(sync=True)
    answered = traitlets.Int(0).tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.on_msg(self._answer)

    def _answer(self, widget, content, buffers):
        self.send({"n": content.get("n")})


echo = Echo()
display(echo)"""


def write_custom_notebook(path: Path) -> Path:
    """Stage 0 shows the custom widget; stage 1 reads it (a boundary for Freezer)."""
    cells = [
        nbformat.v4.new_markdown_cell("# Custom message round trip"),
        nbformat.v4.new_code_cell("from IPython.display import display"),
        nbformat.v4.new_markdown_cell("## Stage 0"),
        nbformat.v4.new_code_cell(ECHO_CELL),
        nbformat.v4.new_markdown_cell("## Stage 1"),
        nbformat.v4.new_code_cell("print('answered', echo.answered)"),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"
    nbformat.write(notebook, path)
    return path


def custom_widget_ready(page: PageSession) -> bool:
    return bool(page.find_all(model_name="AnyModel"))


async def custom_round_trip(page: PageSession, widget: str, n: int, pause: float) -> float:
    """Seconds from sending the custom message `{"n": n}` to receiving the widget's answer."""
    sent: list[str] = []

    async def send() -> None:
        sent.append(await page.send_custom(widget, {"n": n}))

    seconds = await page.round_trip(
        send, until=lambda p: (widget, {"n": n}) in p.custom, timeout=UPDATE_TIMEOUT
    )
    await page.wait_idle(sent[0], UPDATE_TIMEOUT)
    await asyncio.sleep(pause)
    return seconds


async def slider_round_trip(page: PageSession, slider: str, value: int, pause: float) -> float:
    """Seconds from sending `value` to seeing the label the callback sets for it."""
    label = label_text(0, value)
    sent: list[str] = []

    async def move() -> None:
        sent.append(await page.set_value(slider, value))

    seconds = await page.round_trip(
        move, until=lambda p: bool(p.find_all(value=label)), timeout=UPDATE_TIMEOUT
    )
    await page.wait_idle(sent[0], UPDATE_TIMEOUT)
    await asyncio.sleep(pause)
    return seconds


async def main() -> int:
    args_parser = parser(__doc__.splitlines()[0])
    args_parser.add_argument("--updates", type=int, default=500, help="updates per server")
    args_parser.add_argument(
        "--pause-ms", type=float, default=100.0, help="pause after each update (ms)"
    )
    args_parser.add_argument(
        "--custom",
        action="store_true",
        help="measure a custom widget's custom message and its answer instead of a slider",
    )
    opts = options(args_parser.parse_args())
    updates = 30 if opts.quick else opts.extra["updates"]
    warm_up = 5 if opts.quick else WARM_UP
    pause = opts.extra["pause_ms"] / 1000
    custom = bool(opts.extra["custom"])
    all_targets = targets(opts)
    compared = [t for t in all_targets if t.name in ("voila", "freezer pool")]
    samples: dict[str, list[float]] = {t.name: [] for t in compared}
    errors: dict[str, list[str]] = {t.name: [] for t in compared}
    with workspace(stages=2) as (notebook, app_dir, workdir):
        if custom:
            write_custom_notebook(notebook)
        try:
            build_for(compared, notebook, app_dir)
            for target in compared:
                await target.start(notebook, app_dir, workdir)
            live = [t for t in compared if not t.unavailable]
            pages: dict[str, tuple[Person, PageSession, str]] = {}
            for index, target in enumerate(live):
                assert target.server is not None
                person = Person(target.server.base_url)
                page = await target.open_page(person, index)
                if custom:
                    await page.wait_for(custom_widget_ready, 120, "the custom widget")
                    pages[target.name] = (person, page, page.find(model_name="AnyModel"))
                    continue
                await page.wait_for(stage_ready(0), 120, "the first stage")
                pages[target.name] = (person, page, page.find(description=slider_description(0)))
            print(f"measuring {', '.join(pages)} ({updates} updates each) ...", flush=True)
            value = 0
            for start in range(-warm_up, updates, BATCH):
                for name, (_, page, slider) in pages.items():
                    for _ in range(min(BATCH, updates - start)):
                        value = value % 1000 + 1
                        try:
                            if custom:
                                seconds = await custom_round_trip(page, slider, value, pause)
                            else:
                                seconds = await slider_round_trip(page, slider, value, pause)
                        except ClientError as error:
                            errors[name].append(str(error).splitlines()[0])
                            continue
                        if start >= 0:
                            samples[name].append(seconds)
            for person, page, _ in pages.values():
                await page.close(unload=True)
                await person.close()
        finally:
            for target in compared:
                target.stop()
    report(compared, samples, errors, updates, opts.out, custom)
    return 0 if any(samples.values()) else 1


def report(
    compared: list[Target],
    samples: dict[str, list[float]],
    errors: dict[str, list[str]],
    updates: int,
    out: Path,
    custom: bool = False,
) -> None:
    results: dict[str, Any] = {}
    reference = summarize(samples["voila"])
    rows = []
    for target in compared:
        if target.unavailable:
            results[target.name] = {"unavailable": target.unavailable}
            rows.append([target.name, target.figure_label, "", "", "", "", ""])
            continue
        stats = summarize(samples[target.name])
        results[target.name] = {
            "round_trip": stats,
            "samples": samples[target.name],
            "errors": errors[target.name],
        }
        delta = stats["p50"] - reference["p50"]
        rows.append(
            [
                target.name,
                ms(stats["p50"]),
                ms(stats["p95"]),
                ms(stats["p99"]),
                "" if math.isnan(delta) else f"{delta * 1000:+.2f} ms",
                ratio(stats["p50"], reference["p50"]),
                str(len(errors[target.name])),
            ]
        )
    print()
    print_table(["server", "p50", "p95", "p99", "p50 vs voila", "ratio", "errors"], rows)
    name = "roundtrip_custom" if custom else "roundtrip"
    measured = "custom message" if custom else "slider update"
    data = {
        "benchmark": name,
        "measured": measured,
        "updates": updates,
        **environment(),
        "targets": results,
    }
    path = write_json(out, name, data)
    title = "Custom message to the widget's answer" if custom else "Slider update to label update"
    png = plot_samples(out, name, title, samples)
    print(f"\nwrote {path} and {png}")


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
