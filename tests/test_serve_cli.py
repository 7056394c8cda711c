"""`freezer serve` on its command line: a busy port, a bad option value and `--help` each say
one plain thing (exit status 2 for the errors), never a traceback or Voila's own words."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.manifest import Parameter
from runtime.web.handlers import ParameterError, parse_value
from runtime.web.serve_cli import option_error, with_article
from tests.server.conftest import write_app
from tests.support.processes import LOOPBACK

TIMEOUT = 120


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_app(tmp_path_factory.mktemp("cli") / "app")


def serve(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`freezer serve ARGS` in a child process (it would serve forever if it could start)."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from freezer.cli import main; sys.exit(main())",
         "serve", *args],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd, stdin=subprocess.DEVNULL,
    )


def test_a_busy_port_is_one_line_and_exit_2(app_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = serve(str(app_dir), "--port", str(port), "--no-browser")
    assert done.returncode == 2
    assert done.stderr == f"freezer serve: port {port} is in use; pick another with --port\n"
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--auth", "foo"], "freezer serve: --auth: expected one of none, name, token, not 'foo'"),
        (["--port", "abc"], "freezer serve: --port: expected an int, not 'abc'"),
        (["--pool-size=x"], "freezer serve: --pool-size: expected an int, not 'x'"),
    ],
)
def test_a_bad_option_value_is_one_line_and_exit_2(
    app_dir: Path, args: list[str], line: str
) -> None:
    done = serve(str(app_dir), *args)
    assert done.returncode == 2
    assert done.stderr == line + "\n"


def test_help_describes_freezers_options_not_voilas() -> None:
    done = serve("--help")
    assert done.returncode == 0
    text = done.stdout
    assert "APP: the app directory to serve" in text
    assert "Port to listen on. Default 8866." in text
    assert "Default 127.0.0.1" in text
    assert "Default: '127.0.0.1'" in text
    assert "The path the app is served under" in text
    for voila_words in ("notebook_path", "Voilà server", "Voila server", "Voilà API"):
        assert voila_words not in text


def test_type_names_take_the_article_that_fits() -> None:
    assert [with_article(k) for k in ("int", "float", "str", "list", "NoneType")] == [
        "an int", "a float", "a str", "a list", "a NoneType",
    ]
    message = "The 'max_kernels' trait of a FreezerApp instance expected an int, not the str '2x'."
    assert option_error(message, {"max-kernels": "FreezerApp.max_kernels"}) == (
        "--max-kernels: expected an int, not '2x'"
    )


def test_a_start_link_value_of_the_wrong_type_says_an_int() -> None:
    with pytest.raises(ParameterError, match="parameter 'batch' must be an int"):
        parse_value(Parameter("batch", 1, "int"), "three")
