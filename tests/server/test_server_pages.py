"""Sign-in modes, start links with parameters, failing stages, journal failures, the command."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.manifest import Parameter
from tests.server.conftest import write_app
from tests.support.person import Person
from tests.support.processes import ServerProcess
from tests.support.session import PageSession

TIMEOUT = 60.0
ADMIN_TOKEN = "admin-secret-token"

STAGES = (
    (
        "Pick a number",
        "shard = 1\nlabel = 'a'\n"
        "import ipywidgets as widgets\n"
        "number = widgets.IntSlider(value=5, min=0, max=100, description='number')\n"
        "number",
        ("number",),
    ),
    (
        "Result",
        "if number.value > 50:\n    raise ValueError('number too big: ' + str(number.value))\n"
        "print(f'shard={shard} label={label} number={number.value}')",
        (),
    ),
)
PARAMETERS = (Parameter("shard", 1, "int"), Parameter("label", "a", "str"))


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    app = write_app(tmp_path_factory.mktemp("pages") / "app", STAGES, PARAMETERS)
    # the first cell of stage 0 is the notebook's `parameters` cell
    manifest_path = app / "app.json"
    text = manifest_path.read_text()
    manifest_path.write_text(text.replace('"tags": []', '"tags": ["parameters"]', 1))
    return app


@pytest.fixture(scope="module")
def named(app_dir: Path, serve: Callable[..., ServerProcess]) -> ServerProcess:
    return serve(app_dir, "--auth", "name", "--pool-size", "0")


@pytest.fixture(scope="module")
def tokens(app_dir: Path, serve: Callable[..., ServerProcess]) -> ServerProcess:
    return serve(app_dir, "--auth", "token", "--admin-token", ADMIN_TOKEN, "--pool-size", "0",
                 "--show-tracebacks")


def text(page: PageSession) -> str:
    return "\n".join(page.output_text(m) for m in page.find_all(_model_name="OutputModel"))


def html(page: PageSession) -> str:
    return "\n".join(
        str(output.get("data", {}).get("text/html", "")) + str(output.get("traceback", ""))
        for m in page.find_all(_model_name="OutputModel") for output in page.outputs(m)
    )


async def number_then_next(page: PageSession, value: int) -> None:
    await page.wait_for(
        lambda p: bool(p.find_all(_model_name="IntSliderModel", description="number")), TIMEOUT
    )
    number = page.find(_model_name="IntSliderModel", description="number")
    await page.wait_idle(await page.set_value(number, value), TIMEOUT)
    button = page.find(_model_name="ButtonModel", description="Next", disabled=False)
    await page.wait_idle(await page.click(button), TIMEOUT)


async def test_name_sign_in_and_start_link_parameters(named: ServerProcess) -> None:
    async with Person(named.base_url) as person:
        response = await person.fetch("", follow_redirects=False)
        assert response.code == 302 and "/login" in response.headers["Location"]
        await person.login(name="Ada Lovelace")
        page = await person.open("new?shard=3&label=x%3Cy")
        await number_then_next(page, 10)
        await page.wait_for(lambda p: "shard=3 label=x<y number=10" in text(p), TIMEOUT)


async def test_bad_start_links_get_a_clear_escaped_400(named: ServerProcess) -> None:
    async with Person(named.base_url) as person:
        await person.login(name="Bob")
        wrong_type = await person.fetch("new?shard=three")
        assert wrong_type.code == 400
        assert b"shard" in wrong_type.body and b"int" in wrong_type.body
        unknown = await person.fetch("new?%3Cscript%3E=1")
        assert unknown.code == 400
        assert b"unknown parameter" in unknown.body
        assert b"<script>" not in unknown.body and b"&lt;script&gt;" in unknown.body


async def test_sign_in_form_needs_its_xsrf_token(named: ServerProcess) -> None:
    async with Person(named.base_url) as person:
        await person.get_page("login")
        response = await person.fetch("login", method="POST", form={"name": "Mallory"})
        assert response.code == 403
        assert (await person.fetch("", follow_redirects=False)).code == 302  # not signed in


async def test_failing_stage_shows_a_plain_message_and_next_retries(
    named: ServerProcess,
) -> None:
    async with Person(named.base_url) as person:
        await person.login(name="Cleo")
        page = await person.open("new")
        await number_then_next(page, 80)
        await page.wait_for(lambda p: "number too big" in text(p), TIMEOUT)
        assert "Traceback" not in html(page) and "raise ValueError" not in html(page)
        await number_then_next(page, 20)
        await page.wait_for(lambda p: "number=20" in text(p), TIMEOUT)


async def test_tracebacks_only_with_show_tracebacks(tokens: ServerProcess) -> None:
    async with Person(tokens.base_url) as person:
        await person.fetch(f"login?token={ADMIN_TOKEN}")
        page = await person.open("new")
        await number_then_next(page, 90)
        await page.wait_for(lambda p: "number too big" in text(p), TIMEOUT)
        assert "ValueError" in html(page)


async def test_token_sign_in(
    tokens: ServerProcess, app_dir: Path, open_store: Callable[..., Any]
) -> None:
    store = await open_store(app_dir)
    await store.create_invite("Dana", "dana-invite")
    async with Person(tokens.base_url) as dana, Person(tokens.base_url) as eve:
        refused = await eve.fetch("login?token=not-a-token")
        assert refused.code == 403
        assert (await eve.fetch("", follow_redirects=False)).code == 302
        assert (await eve.fetch("admin", follow_redirects=False)).code in (302, 403)

        await dana.fetch("login?token=dana-invite", follow_redirects=False)
        page = await dana.open("")
        run = await store.get_run(page.page.url.rsplit("/", 1)[-1])
        assert run is not None and run.user_name == "Dana"
        admin_page = await dana.fetch("admin")
        assert admin_page.code == 403


async def test_admin_token_opens_the_admin_page(tokens: ServerProcess) -> None:
    async with Person(tokens.base_url) as admin:
        await admin.fetch(f"login?token={ADMIN_TOKEN}")
        response = await admin.fetch("admin")
        assert response.code == 200


async def test_a_change_the_journal_cannot_save_is_not_applied(
    named: ServerProcess, app_dir: Path
) -> None:
    async with Person(named.base_url) as person:
        await person.login(name="Finn")
        page = await person.open("new")
        await page.wait_for(
            lambda p: bool(p.find_all(_model_name="IntSliderModel", description="number")),
            TIMEOUT,
        )
        run_id = page.page.url.rsplit("/", 1)[-1]
        # the run's row disappears under the server: its events can no longer be stored
        await asyncio.to_thread(delete_run, app_dir / "freezer.db", run_id)
        number = page.find(_model_name="IntSliderModel", description="number")
        msg_id = await page.set_value(number, 44)
        await page.wait_for(
            lambda p: any("could not save" in str(o.get("text", "")) for o in p.stray_outputs),
            TIMEOUT, "the page to be told",
        )
        await page.request("shell", "kernel_info_request", {})
        assert msg_id not in page._idle  # never reached the kernel
        # and the page is put back to what the kernel has
        await page.wait_for(lambda p: p.value(number) == 5, TIMEOUT, "the slider back at 5")


def delete_run(database: Path, run_id: str) -> None:
    with sqlite3.connect(database, timeout=30) as connection:
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("DELETE FROM runs WHERE id = ?", (run_id,))


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "freezer", "serve", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_serve_help_lists_the_options() -> None:
    result = run_serve("--help")
    assert result.returncode == 0
    for option in ("--db", "--auth", "--pool-size", "--max-kernels", "--cull-idle-timeout",
                   "--admin-token", "--show-tracebacks", "--base-url"):
        assert option in result.stdout


def test_bad_app_directory_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_serve(str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "app.json" in result.stderr
    (tmp_path / "app.json").write_text('{"format": 99}')
    result = run_serve(str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "newer" in result.stderr
