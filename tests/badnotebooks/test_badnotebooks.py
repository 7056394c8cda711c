"""The bad-notebook corpus: every broken or hostile notebook gives a clear answer, never a crash
or a hang.

- `build` cases: `freezer build` exits 2 with one line (`freezer: FILE: ...`, no traceback).
- `stage` cases: they build; run by the real runner in a real kernel, the first stage fails
  with a one-line error and the person's message, and the kernel keeps answering.
- `ok` cases: they build and run to the end.
- Through the real server: a notebook whose kernel dies while starting gives a clear page and
  no crash loop; a runaway stage with a per-stage timeout (not yet: `freezer serve` has no
  stage timeout option) is stopped and the person told.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import AsyncKernelManager

from tests.badnotebooks.make_corpus import CASES, CORPUS, code, notebook, write_corpus
from tests.faults.harness import TIMEOUT
from tests.runner.conftest import BOOTSTRAP, configure
from tests.support.eventually import eventually
from tests.support.frontend import Frontend
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_server

BUILD_TIMEOUT = 120.0


def build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from freezer.cli import main; sys.exit(main())",
         "build", str(source), "-o", str(out)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int, str]]:
    """Every corpus notebook built once: name -> (app dir, exit status, stderr)."""
    base = tmp_path_factory.mktemp("bad")
    results: dict[str, tuple[Path, int, str]] = {}

    def one(name: str) -> tuple[str, tuple[Path, int, str]]:
        source = base / f"{name}.ipynb"
        source.write_bytes((CORPUS / f"{name}.ipynb.bad").read_bytes())
        done = build(source, base / f"{name}-app")
        return name, (base / f"{name}-app", done.returncode, done.stderr)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        results.update(pool.map(one, CASES))
    return results


def test_the_corpus_is_what_the_script_writes(tmp_path: Path) -> None:
    assert len(CASES) >= 40
    write_corpus(tmp_path)
    committed = {p.name: p.read_bytes() for p in CORPUS.iterdir()}
    generated = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert committed == generated, "run tests/badnotebooks/make_corpus.py and commit"


@pytest.mark.parametrize("name", [n for n, case in CASES.items() if case[0] == "build"])
def test_refused_at_build_with_one_clear_line(
    name: str, built: dict[str, tuple[Path, int, str]]
) -> None:
    app_dir, status, err = built[name]
    fragment = CASES[name][1]
    assert status == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("freezer: "), err
    assert f"{name}.ipynb" in err and fragment in err, err
    assert not (app_dir / "app.json").exists()


async def run_first_stage(app_dir: Path) -> Frontend:
    """Start a kernel in the app, configure a run, show the app; wait for stage 0's end."""
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel(cwd=str(app_dir))
    frontend = Frontend(km)
    await frontend.start()
    await frontend.execute_ok(configure())
    await frontend.execute_ok(BOOTSTRAP)
    await frontend.wait_for(lambda: frontend.has_event("stage_failed")
                            or frontend.has_event("stage_ready"))
    return frontend


@pytest.fixture
async def frontends() -> AsyncIterator[list[Frontend]]:
    started: list[Frontend] = []
    try:
        yield started
    finally:
        for frontend in started:
            await frontend.stop()
        await asyncio.gather(*(f.km.shutdown_kernel(now=True) for f in started))


RUN_CASES = [n for n, case in CASES.items() if case[0] in ("stage", "ok")]


async def test_built_notebooks_fail_clearly_or_run_at_run_time(
    built: dict[str, tuple[Path, int, str]], frontends: list[Frontend]
) -> None:
    for name in RUN_CASES:
        assert built[name][1] == 0, (name, built[name][2])
    limit = asyncio.Semaphore(3)

    async def check(name: str) -> None:
        async with limit:
            frontend = await run_first_stage(built[name][0])
            frontends.append(frontend)
            expectation, fragment = CASES[name][:2]
            failed = frontend.has_event("stage_failed")
            if expectation == "ok":
                assert failed is None, (name, failed)
                await frontend.wait_for(lambda: frontend.has_event("finished"))
            else:
                assert failed is not None, (name, frontend.event_kinds())
                error = failed["error"]
                assert "\n" not in error and fragment in error and len(error) < 2000, \
                    (name, error[:300])
                text = frontend.stage_text(0)
                assert "failed" in text or "interrupted" in text, (name, text[:300])
                assert "<script>alert" not in text.replace(error, ""), name
                assert frontend.next_button(), name  # Next re-runs the failed stage
            # the kernel survived its notebook
            assert await frontend.execute_text("print('alive')") == "alive\n", name

    await asyncio.gather(*(check(name) for name in RUN_CASES))


# --- through the real server -----------------------------------------------------------------


def write_notebook(path: Path, *cells: dict[str, object]) -> Path:
    path.write_text(notebook(*cells))
    return path


@pytest.fixture(scope="module")
def dying_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("dying")
    source = write_notebook(
        base / "dies.ipynb",
        code("import os\nos._exit(7)", metadata={"tags": ["freeze:warm"]}),
        code("print('never')"),
    )
    assert build(source, base / "app").returncode == 0
    return base / "app"


@pytest.fixture(scope="module")
def dying_server(dying_app: Path) -> Iterator[ServerProcess]:
    server = start_server(dying_app, "--pool-size", "1", "--kernel-timeout", "20")
    try:
        yield server
    finally:
        server.stop()


def kernel_starts(server: ServerProcess) -> int:
    return server.log_tail(100000).count("Kernel started")


async def test_a_kernel_that_dies_on_start_gives_a_clear_page(
    dying_server: ServerProcess,
) -> None:
    async with Person(dying_server.base_url, request_timeout=TIMEOUT) as person:
        response = await person.start()
        assert response.code in (500, 503), response.code
        assert b"could not be started" in response.body or b"busy" in response.body
        assert b"Traceback" not in response.body
        assert (await person.fetch("health")).code == 200
        # no crash loop: the pool does not restart dying kernels over and over
        starts = kernel_starts(dying_server)
        again = await person.fetch(response.effective_url)
        assert again.code in (500, 503)
        health = json.loads((await person.fetch("health")).body)
        assert health["status"] == "ok"
        assert kernel_starts(dying_server) <= starts + 2, dying_server.log_tail(30)


async def test_a_runaway_stage_is_stopped_by_the_stage_timeout(tmp_path: Path) -> None:
    source = write_notebook(
        tmp_path / "loops.ipynb",
        code("import ipywidgets as w\nstop = w.Checkbox(description='stop')\nstop"),
        code("while not stop.value:\n    pass\nprint('stopped looping')"),
    )
    assert build(source, tmp_path / "app").returncode == 0
    server = await asyncio.to_thread(start_server, tmp_path / "app", "--pool-size", "0",
                                     "--stage-timeout", "2")
    try:
        async with Person(server.base_url, request_timeout=TIMEOUT) as person:
            page = await person.open("new")
            await page.wait_for(lambda p: bool(p.find_all(_model_name="CheckboxModel")),
                                TIMEOUT)
            await page.click(page.find(_model_name="ButtonModel", description="Next"))
            await eventually(lambda: "took longer than" in "".join(
                page.output_text(m) for m in page.find_all(_model_name="OutputModel")),
                "the timeout message")
    finally:
        server.stop()
