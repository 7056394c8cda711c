"""Build diagnostics that depend on the files beside the notebook and on the installed
front-ends: `local-module`, `missing-include`, `widget-frontend-missing`; and
`custom-widget-no-disabled`, the warning about a custom widget Freezer cannot disable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from freezer.commands import build_main
from freezer.plan import plan_notebook

FAKELIB = Path(__file__).resolve().parent / "fixtures" / "fakelib"

TAGGER = '''
import ipywidgets


class Tagger(ipywidgets.VBox):
    def __init__(self, labels):
        self.labels = labels
        yes = ipywidgets.Button(description="yes")
        yes.on_click(self.tag)
        super().__init__(children=[yes])

    def tag(self, _button):
        self.labels[0] = 1
'''


def write_nb(path: Path, *sources: str) -> Path:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nbformat.write(nb, str(path))
    return path


def warnings(capsys: pytest.CaptureFixture[str], code: str) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if f" {code}: " in line]


def test_an_included_local_module_is_not_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mymod.py").write_text("VALUE = 1\n")
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    notebook = write_nb(tmp_path / "nb.ipynb", "import mymod\nimport mypkg\nprint(mymod.VALUE)")
    assert build_main([str(notebook), "-o", str(tmp_path / "app")]) == 0
    assert len(warnings(capsys, "local-module")) == 2
    assert build_main([str(notebook), "-o", str(tmp_path / "app"), "--include",
                       str(tmp_path / "mymod.py"), "--include", str(tmp_path / "mypkg")]) == 0
    assert warnings(capsys, "local-module") == []


def test_files_the_notebook_writes_are_not_missing_includes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("out.txt", "labels.csv", "helper.py", "plot.png", "copy.txt", "read.txt"):
        (tmp_path / name).write_text("left by an earlier run\n")
    notebook = write_nb(
        tmp_path / "nb.ipynb",
        "import shutil\nfrom pathlib import Path\nOUT = 'out.txt'\n"
        "with open(OUT, 'w') as f:\n    f.write('x')\n"
        "Path('plot.png').write_bytes(b'')\nshutil.copy('read.txt', 'copy.txt')",
        "import pandas as pd\npd.DataFrame({'a': [1]}).to_csv('labels.csv')",
        "%%writefile helper.py\nVALUE = 1",
    )
    assert build_main([str(notebook), "-o", str(tmp_path / "app")]) == 0
    found = warnings(capsys, "missing-include")
    assert found == [f"{notebook}: cell 1, line 7: warning missing-include: 'read.txt' is "
                     "beside the notebook but not in the app; build with --include read.txt"]


def test_files_the_trace_run_writes_are_not_missing_includes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = write_nb(
        tmp_path / "nb.ipynb",
        "import pathlib\nfolder = pathlib.Path('cache')\nfolder.mkdir(exist_ok=True)\n"
        "(folder / 'rows.json').write_text('[]')\nprint(sorted(p.name for p in "
        "pathlib.Path('.').iterdir() if p.name == 'cache'))",
    )
    args = [str(notebook), "-o", str(tmp_path / "app")]
    assert build_main([*args, "--trace"]) == 0
    assert (tmp_path / "cache" / "rows.json").is_file()  # the trace run really wrote it
    assert warnings(capsys, "missing-include") == []
    # Without the trace, nothing says the notebook makes cache/ itself.
    assert build_main(args) == 0
    assert len(warnings(capsys, "missing-include")) == 1


def test_a_widget_module_beside_the_notebook_is_resolved_and_its_data_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mytagger.py").write_text(TAGGER)
    notebook = write_nb(tmp_path / "nb.ipynb",
                        "from mytagger import Tagger\nlabels = [0]\nTagger(labels)",
                        "print(labels)")
    assert build_main([str(notebook), "-o", str(tmp_path / "app"),
                       "--include", str(tmp_path / "mytagger.py")]) == 0
    out = capsys.readouterr().out
    assert "Next when: cell 2 reads labels (handed to widget Tagger in cell 1)" in out
    manifest = json.loads((tmp_path / "app" / "app.json").read_text())
    assert manifest["stages"][0]["waits_on"] == [
        {"name": "labels", "kind": "callback", "bound_in_cell": 0}]


def extension(root: Path, name: str, base: str) -> None:
    package = root / "labextensions" / name
    package.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({
        "name": name, "version": "1.0.0", "dependencies": {"@jupyter-widgets/base": base},
    }))


def frontend_warnings(**kwargs: Any) -> list[str]:
    nb = new_notebook(cells=[new_code_cell("from nofrontend import Sketch\npad = Sketch()\npad")])
    plan = plan_notebook(nb, library_path=[str(FAKELIB)], **kwargs)
    return [d.message for d in plan.diagnostics if d.code == "widget-frontend-missing"]


def test_a_frontend_built_for_ipywidgets_7_is_warned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(frontend_warnings()) == 1  # installed nowhere
    extension(tmp_path / "old", "fake-sketch-widget", "^1.1.10 || ^2 || ^3 || ^4")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "old"))
    [message] = frontend_warnings()
    assert "'fake-sketch-widget'" in message and "built for ipywidgets 7" in message
    extension(tmp_path / "new", "fake-sketch-widget", "^2 || ^3 || ^4 || ^5 || ^6")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "new"))
    assert frontend_warnings() == []


def test_build_warns_a_missing_frontend_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(FAKELIB))
    notebook = write_nb(tmp_path / "nb.ipynb", "from nofrontend import Sketch\npad = Sketch()\npad",
                        "print(pad.value)")
    assert build_main([str(notebook), "-o", str(tmp_path / "app")]) == 0
    [line] = warnings(capsys, "widget-frontend-missing")
    assert line.startswith(f"{notebook}: cell 1, line 1: warning widget-frontend-missing: "
                           "nofrontend.Sketch: its front-end, the npm package "
                           "'fake-sketch-widget', is not installed")


def test_build_warns_a_custom_widget_it_cannot_disable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = write_nb(
        tmp_path / "nb.ipynb",
        "import anywidget\nimport traitlets",
        "x = 1\n\nclass Pad(anywidget.AnyWidget):\n    _esm = 'export default {}'\n"
        "    strokes = traitlets.List([]).tag(sync=True)",
        "pad = Pad()\npad",
        "print(pad.strokes)",
    )
    assert build_main([str(notebook), "-o", str(tmp_path / "app")]) == 0
    [line] = warnings(capsys, "custom-widget-no-disabled")
    assert line.startswith(f"{notebook}: cell 2, line 3: warning custom-widget-no-disabled: "
                           "Pad is a custom widget (anywidget) with no `disabled` trait")
    assert "disabled = traitlets.Bool(False).tag(sync=True)" in line
    # with the trait the front-end honours, nothing to warn about
    notebook = write_nb(
        tmp_path / "ok.ipynb",
        "import anywidget\nimport traitlets",
        "class Pad(anywidget.AnyWidget):\n    _esm = 'export default {}'\n"
        "    disabled = traitlets.Bool(False).tag(sync=True)",
        "pad = Pad()\npad",
        "print(pad.disabled)",
    )
    assert build_main([str(notebook), "-o", str(tmp_path / "ok")]) == 0
    assert warnings(capsys, "custom-widget-no-disabled") == []
