"""An app's `requirements.txt` is all a server needs: every pin resolves here (fast), and with
`FREEZER_TEST_VENV=1` the proxy test serves the app from a fresh environment made from it."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

import freezer


def requirement_lines(app_dir: Path) -> list[str]:
    text = (app_dir / "requirements.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_every_pin_is_the_version_installed_here(labeling_app: Path) -> None:
    lines = requirement_lines(labeling_app)
    names = [Requirement(line).name for line in lines]
    assert "freezer" in names and {"ipywidgets", "numpy", "matplotlib"} <= set(names), lines
    for line in lines:
        requirement = Requirement(line)
        installed = metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), (line, installed)
    assert f"freezer=={freezer.__version__}" in lines


def test_pip_resolves_the_requirements_against_this_environment(labeling_app: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index",
         "-r", str(labeling_app / "requirements.txt")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Would install" not in done.stdout, done.stdout
