"""The wheel holds the product only: `freezer` and `runtime`, with the runtime's data files
(page templates, static files, the store's migrations), and none of the test tooling."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA_DIRS = ("runtime/web/templates", "runtime/web/static", "runtime/store/migrations")
BUILD_TIMEOUT = 300


def source_files(directory: str) -> set[str]:
    """The files of a directory of the checkout, as wheel entry names (no bytecode)."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / directory).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The entries of a wheel built from this checkout (`pip wheel --no-deps .`)."""
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(out)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [wheel] = out.glob("freezer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_wheel_holds_only_freezer_and_runtime(wheel_names: set[str]) -> None:
    tops = {name.split("/", 1)[0] for name in wheel_names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"freezer", "runtime"}
    assert not [name for name in wheel_names if name.startswith("tests/") or "/tests/" in name]
    assert not [name for name in wheel_names if "/support/" in name or "benchmarks" in name]


@pytest.mark.parametrize("directory", DATA_DIRS)
def test_the_wheel_holds_the_runtime_data_files(wheel_names: set[str], directory: str) -> None:
    expected = source_files(directory)
    assert expected, f"{directory} is empty in the checkout"
    assert expected <= wheel_names, sorted(expected - wheel_names)


def test_the_wheel_holds_every_module_of_both_packages(wheel_names: set[str]) -> None:
    modules = {
        name for package in ("freezer", "runtime") for name in source_files(package)
        if name.endswith(".py")
    }
    assert modules <= wheel_names, sorted(modules - wheel_names)
