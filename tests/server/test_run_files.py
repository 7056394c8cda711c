"""Each run's own working directory: seeded from the app's files, kept, reset for replay, served.

Real servers and kernels driven at the protocol level (`tests.support.person.Person`). The app's
notebook appends the person's number to `rows.csv` (seeded with a header row) and rewrites
`seed.txt`, so runs that shared a directory would see each other's rows and the seed would change.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from runtime.manifest import Cell, Manifest, Stage, WaitsOn, dump
from runtime.runs.runfiles import KERNELS_DIR, RunFiles, RunFilesError, expired
from tests.faults.harness import act, click_next, has_slider, shows, slider, text
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_server
from tests.support.session import PageSession

TIMEOUT = 60.0
SEED_ROWS = "number\n"
WARM = (
    "import os\n"
    "seen_at_warm = open('seed.txt').read()\n"
    "warm_cwd = os.getcwd()\n"
)
PICK = (
    "import ipywidgets as widgets\n"
    "number = widgets.IntSlider(value=5, min=0, max=100, description='number')\n"
    "number"
)
APPEND = (
    "with open('rows.csv', 'a') as f:\n"
    "    f.write(f'{number.value}\\n')\n"
    "open('seed.txt', 'w').write(f'changed by {number.value}')\n"
    "rows = open('rows.csv').read().replace(chr(10), ';')\n"
    "print(f'rows={rows} warm={seen_at_warm} cwd={os.getcwd()}')\n"
)


def write_files_app(directory: Path) -> Path:
    """An app whose warm cell reads a seed file and whose stage 1 appends to another."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(
        title="Run files", source_name="files.ipynb", source_sha256="0" * 64,
        freezer_version="0.1.0", created="2026-01-01T00:00:00Z", kernel_name="python3",
        kernel_language="python",
        stages=(
            Stage(index=0, title="Pick", cells=(
                Cell(id="warm", kind="code", source=WARM, tags=("freeze:warm",)),
                Cell(id="pick", kind="code", source=PICK),
            ), waits_on=(WaitsOn("number", "widget", 1),)),
            Stage(index=1, title="Append", cells=(Cell(id="append", kind="code", source=APPEND),)),
        ),
    ).with_app_id()
    dump(manifest, directory)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell("from runtime.kernel import runner\nrunner.show()")]
    nbformat.write(notebook, directory / "app.ipynb")
    files = directory / "files"
    (files / "sub").mkdir(parents=True, exist_ok=True)
    (files / "rows.csv").write_text(SEED_ROWS)
    (files / "seed.txt").write_text("pristine")
    (files / "sub" / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    return directory


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_files_app(tmp_path_factory.mktemp("runfiles") / "app")


@pytest.fixture(scope="module")
def server(app_dir: Path, serve: Callable[..., ServerProcess]) -> ServerProcess:
    return serve(app_dir, "--pool-size", "1", "--auth", "name", "--admin-token", "s3cret")


def run_id_of(page: PageSession) -> str:
    return page.page.url.rstrip("/").rsplit("/", 1)[-1]


async def pick_and_append(page: PageSession, value: int) -> None:
    await page.wait_for(has_slider("number"), TIMEOUT, "the number slider")
    await act(page, await page.set_value(slider(page, "number"), value))
    await click_next(page)
    await page.wait_for(shows("rows="), TIMEOUT, "the rows of stage 1")


async def signed_in(server: ServerProcess, name: str) -> Person:
    person = Person(server.base_url, request_timeout=TIMEOUT)
    await person.login(name=name, follow_redirects=False)
    return person


async def test_two_people_appending_to_one_file_name_see_only_their_own_rows(
    server: ServerProcess, app_dir: Path
) -> None:
    ada, bob = await signed_in(server, "ada"), await signed_in(server, "bob")
    try:
        page_a, page_b = await ada.open(""), await bob.open("")
        await asyncio.gather(pick_and_append(page_a, 11), pick_and_append(page_b, 22))
        run_a, run_b = run_id_of(page_a), run_id_of(page_b)
        runs = app_dir / "runs"
        assert f"rows=number;11; warm=pristine cwd={runs / run_a}" in text(page_a)
        assert f"rows=number;22; warm=pristine cwd={runs / run_b}" in text(page_b)
        assert (runs / run_a / "rows.csv").read_text() == "number\n11\n"
        assert (runs / run_b / "rows.csv").read_text() == "number\n22\n"
        assert (runs / run_a / "seed.txt").read_text() == "changed by 11"
        # the seed stays pristine: a run's open(..., "w") changed its own copy only
        assert (app_dir / "files" / "rows.csv").read_text() == SEED_ROWS
        assert (app_dir / "files" / "seed.txt").read_text() == "pristine"
    finally:
        await ada.close()
        await bob.close()


async def test_restart_and_replay_leave_each_file_as_before(tmp_path: Path) -> None:
    app_dir = write_files_app(tmp_path / "app")
    server = start_server(app_dir, "--pool-size", "1", "--auth", "name")
    try:
        people = [await signed_in(server, name) for name in ("cy", "di")]
        pages = [await person.open("") for person in people]
        for page, value in zip(pages, (3, 4), strict=True):
            await pick_and_append(page, value)
        run_ids = [run_id_of(page) for page in pages]
        before = {run_id: (app_dir / "runs" / run_id / "rows.csv").read_text()
                  for run_id in run_ids}
        assert list(before.values()) == ["number\n3\n", "number\n4\n"]
        for person in people:
            await person.close()
    finally:
        server.stop()
    # the pool kernel's copy of the seed went with it
    assert list((app_dir / "runs" / KERNELS_DIR).iterdir()) == []

    server = start_server(app_dir, "--pool-size", "1", "--auth", "name", port=server.port)
    try:
        for name, run_id, value in zip(("cy", "di"), run_ids, (3, 4), strict=True):
            person = await signed_in(server, name)
            try:
                page = await person.open(f"run/{run_id}")  # a fresh kernel replays the journal
                await page.wait_for(shows("rows="), TIMEOUT, "the replayed stage 1")
                assert f"rows=number;{value}; warm=pristine" in text(page)
            finally:
                await person.close()
            assert (app_dir / "runs" / run_id / "rows.csv").read_text() == before[run_id]
            assert (app_dir / "runs" / run_id / "seed.txt").read_text() == f"changed by {value}"
    finally:
        server.stop()


async def test_relative_files_are_served_to_the_owner_and_admins_only(
    server: ServerProcess,
) -> None:
    eve, fay = await signed_in(server, "eve"), await signed_in(server, "fay")
    admin = Person(server.base_url, request_timeout=TIMEOUT)
    try:
        page = await eve.open("")
        run_id = run_id_of(page)
        own = await eve.fetch(f"run/{run_id}/sub/pic.png")
        assert own.code == 200 and own.body.startswith(b"\x89PNG")
        assert own.headers["Content-Type"] == "image/png"
        assert own.headers["X-Content-Type-Options"] == "nosniff"
        csv = await eve.fetch(f"run/{run_id}/rows.csv")
        assert csv.code == 200 and csv.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert (await fay.fetch(f"run/{run_id}/sub/pic.png")).code == 404
        for path in ("../../app.json", "%2e%2e/%2e%2e/app.json", "..%2f..%2fapp.json",
                     "sub/../../runs", "sub", "missing.png", "%00", "/etc/passwd"):
            response = await eve.fetch(f"run/{run_id}/{path}", follow_redirects=False)
            assert response.code in (400, 404), (path, response.code)
            assert b'"app_id"' not in (response.body or b""), path
        # Voila's own file route served the app directory, run directories included
        leaked = await fay.fetch(f"voila/files/runs/{run_id}/sub/pic.png")
        assert leaked.code in (403, 404)
        await admin.get_page("login?token=s3cret")
        assert (await admin.fetch(f"run/{run_id}/sub/pic.png")).code == 200
    finally:
        await eve.close()
        await fay.close()
        await admin.close()


async def test_pool_kernels_wait_in_a_seeded_directory_of_their_own(
    server: ServerProcess, app_dir: Path
) -> None:
    person = await signed_in(server, "gus")
    try:
        await person.open("")  # takes the pool kernel; its replacement starts after the stage
        kernels = app_dir / "runs" / KERNELS_DIR

        async def pool_dir_seeded() -> bool:
            return any((entry / "seed.txt").is_file() for entry in kernels.iterdir())

        await eventually(pool_dir_seeded, "a pool kernel directory seeded", TIMEOUT)
        waiting = [entry for entry in kernels.iterdir() if (entry / "seed.txt").is_file()]
        assert (waiting[0] / "seed.txt").read_text() == "pristine"
    finally:
        await person.close()


def freezer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "freezer", *args], capture_output=True,
                          text=True, timeout=TIMEOUT)


async def test_abandoned_runs_files_go_with_prune_and_past_retention(tmp_path: Path) -> None:
    app_dir = write_files_app(tmp_path / "app")
    server = start_server(app_dir, "--pool-size", "0", "--auth", "name")
    try:
        person = await signed_in(server, "hal")
        try:
            run_ids, path = [], ""
            for index in range(3):
                page = await person.open(path)
                await pick_and_append(page, 9)
                run_ids.append(run_id_of(page))
                await page.close()
                if index == 2:
                    break
                # start over: the run is abandoned, a new one starts
                form_page = await person.get_page("")
                started = await person.fetch("new", method="POST", form={
                    "abandon": run_ids[-1], "_xsrf": form_page.xsrf or "",
                })
                path = "run/" + started.effective_url.rstrip("/").rsplit("/", 1)[-1]
            abandoned, kept = run_ids[:2], run_ids[2:]
        finally:
            await person.close()
    finally:
        server.stop()
    runs = app_dir / "runs"
    for run_id in kept + abandoned:
        assert (runs / run_id / "rows.csv").is_file()

    # the server deletes an abandoned run's files once its retention has passed
    server = start_server(app_dir, "--pool-size", "0", "--run-files-retention", "1e-9")
    try:
        async def first_gone() -> bool:
            return not (runs / abandoned[0]).exists()

        await eventually(first_gone, "the abandoned run's files deleted", TIMEOUT)
    finally:
        server.stop()
    assert not (runs / abandoned[1]).exists()
    assert (runs / kept[0] / "rows.csv").is_file()

    (runs / "notarun").mkdir()
    (runs / abandoned[1]).mkdir()
    result = freezer("runs", str(app_dir), "--prune")
    assert result.returncode == 0, result.stderr
    assert "removed the files of 2 runs" in result.stdout
    assert not (runs / "notarun").exists() and not (runs / abandoned[1]).exists()
    assert (runs / kept[0] / "rows.csv").read_text() == "number\n9\n"


def test_retention_counts_days_of_abandoned_runs_only() -> None:
    day = 86400.0
    assert expired("abandoned", 0.0, 30, now=31 * day)
    assert not expired("abandoned", 0.0, 30, now=29 * day)
    assert not expired("finished", 0.0, 30, now=365 * day)
    assert not expired("abandoned", 0.0, 0, now=365 * day)


def test_a_run_directory_accepts_no_path_out_of_it(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "a.txt").write_text("a")
    (tmp_path / "secret.txt").write_text("secret")
    run_files = RunFiles(tmp_path / "runs", seed)
    run_files.start()
    kernel_dir = asyncio.run(run_files.new_kernel_dir())
    run_dir = run_files.bind(kernel_dir, "run1")
    (run_dir / "out").symlink_to(tmp_path / "secret.txt")
    assert run_files.file_path("run1", "a.txt") == (run_dir / "a.txt").resolve()
    for path in ("out", "../secret.txt", "/etc/passwd", ".", "", "a.txt/..", "x\\..\\a"):
        assert run_files.file_path("run1", path) is None, path
    with pytest.raises(RunFilesError, match="not a run id"):
        run_files.run_dir("../x")
    assert [f.path for f in run_files.files("run1")] == ["a.txt"]


def test_a_rebuild_keeps_the_run_directories(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("print(1)")]
    nbformat.write(notebook, tmp_path / "nb.ipynb")
    app = tmp_path / "app"
    assert freezer("build", str(tmp_path / "nb.ipynb"), "-o", str(app)).returncode == 0
    (app / "runs" / "run1").mkdir(parents=True)
    (app / "runs" / "run1" / "out.csv").write_text("kept")
    result = freezer("build", str(tmp_path / "nb.ipynb"), "-o", str(app))
    assert result.returncode == 0, result.stderr
    assert (app / "runs" / "run1" / "out.csv").read_text() == "kept"
