"""In Chromium: a page's relative pictures load, and a widget without a front-end says so.

The app is built by the real compiler with `--include` (a markdown `![a picture](pic.png)` and
an HTML output's `<img src="i/cat.gif">`), and defines two widgets the page cannot show: one
whose `_model_module` names a package that does not exist, one that asks for the ipywidgets 7
version of the controls.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Page, expect

from tests.support.processes import ServerProcess

TIMEOUT_MS = 60_000
PNG = base64.b64decode(  # 2x2 pixels
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFElEQVR4nGP8z8DAwMDAxMDAwAAADhUBA4a3MzUAAAAA"
    "SUVORK5CYII="
)
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
MISSING_PACKAGE = "freezer-no-such-widget-package"
WIDGETS = f"""\
import ipywidgets as widgets
from traitlets import Unicode

class Missing(widgets.DOMWidget):
    _model_name = Unicode('MissingModel').tag(sync=True)
    _model_module = Unicode({MISSING_PACKAGE!r}).tag(sync=True)
    _model_module_version = Unicode('^1.0.0').tag(sync=True)
    _view_name = Unicode('MissingView').tag(sync=True)
    _view_module = Unicode({MISSING_PACKAGE!r}).tag(sync=True)
    _view_module_version = Unicode('^1.0.0').tag(sync=True)

class OldSlider(widgets.DOMWidget):
    _model_name = Unicode('IntSliderModel').tag(sync=True)
    _model_module = Unicode('@jupyter-widgets/controls').tag(sync=True)
    _model_module_version = Unicode('1.5.0').tag(sync=True)
    _view_name = Unicode('IntSliderView').tag(sync=True)
    _view_module = Unicode('@jupyter-widgets/controls').tag(sync=True)
    _view_module_version = Unicode('1.5.0').tag(sync=True)

display(Missing())
display(OldSlider())
"""
IMAGE_LOADED = """src => [...document.images].some(
    image => image.getAttribute("src") === src && image.complete && image.naturalWidth > 0)"""


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("pictures")
    (source / "i").mkdir()
    (source / "pic.png").write_bytes(PNG)
    (source / "i" / "cat.gif").write_bytes(GIF)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Pictures\n\n![a picture](pic.png)"),
        nbformat.v4.new_code_cell(
            "from IPython.display import HTML, display\n"
            "display(HTML('<img id=\"cat\" src=\"i/cat.gif\">'))"
        ),
        nbformat.v4.new_code_cell(WIDGETS),
    ]
    nbformat.write(notebook, source / "pictures.ipynb")
    build = subprocess.run(
        [sys.executable, "-m", "freezer", "build", "pictures.ipynb", "-o", "app",
         "--include", "pic.png", "--include", "i"],
        cwd=source, capture_output=True, text=True, timeout=120,
    )
    assert build.returncode == 0, build.stderr
    return source / "app"


@pytest.fixture(scope="module")
def server(app_dir: Path, serve: Callable[..., ServerProcess]) -> ServerProcess:
    return serve(app_dir, "--pool-size", "1")


def test_relative_pictures_of_markdown_and_html_outputs_load(
    server: ServerProcess, page: Page
) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.base_url)
    page.get_by_role("button", name="Start").click()  # starting a run is a POST
    page.locator("img#cat").wait_for()
    page.wait_for_function(IMAGE_LOADED, arg="pic.png", timeout=TIMEOUT_MS)
    page.wait_for_function(IMAGE_LOADED, arg="i/cat.gif", timeout=TIMEOUT_MS)
    sizes = page.evaluate("() => [...document.images].filter(i => !i.src.startsWith('data:'))"
                          ".map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert sorted(sizes) == [["i/cat.gif", 1], ["pic.png", 2]]
    # the markdown heading's anchor still points into the page, not to another URL
    url = page.url
    page.evaluate("() => { const a = document.createElement('a'); a.href = '#Pictures';"
                  " a.id = 'anchor'; a.textContent = 'to the top'; document.body.append(a); }")
    page.locator("#anchor").click()
    assert page.url == url + "#Pictures"


def test_a_widget_without_its_front_end_is_a_sentence(server: ServerProcess, page: Page) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.base_url)
    page.get_by_role("button", name="Start").click()  # starting a run is a POST
    missing = page.get_by_text(
        f"This widget cannot be shown: its front-end, the JavaScript package "
        f"\u201c{MISSING_PACKAGE}\u201d, is not installed on this server."
    )
    expect(missing).to_be_visible()
    old = page.get_by_text(
        "This widget cannot be shown: it needs version ^1.5.0 of the JavaScript package "
        "\u201c@jupyter-widgets/controls\u201d, and this server has 2.0.0"
    )
    expect(old).to_be_visible()
    expect(page.get_by_text("Click to show javascript error")).to_have_count(0)
