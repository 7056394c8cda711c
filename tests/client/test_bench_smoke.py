"""The benchmark harness runs end to end against plain Voila and writes its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_first_stage_benchmark_quick_against_voila_writes_figures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/first_stage.py",
            "--quick",
            "--only",
            "voila",
            "--notebooks",
            "pipeline,labeling",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "first_stage.json").read_text())
    voila = data["targets"]["voila"]
    assert voila["errors"] == []
    assert voila["first_stage"]["n"] == 1
    assert 0 < voila["first_stage"]["p50"] <= voila["first_stage"]["max"]
    for other in ("voila preheat", "freezer pool", "freezer"):
        assert data["targets"][other] == {"unavailable": "not requested"}
    assert (tmp_path / "first_stage.png").stat().st_size > 0
    assert "vs voila cold" in proc.stdout
    labeling = json.loads((tmp_path / "first_stage_labeling.json").read_text())
    assert labeling["notebook"] == "labeling"
    assert labeling["targets"]["voila"]["errors"] == []
    assert labeling["targets"]["voila"]["first_stage"]["n"] == 1


def test_replay_benchmark_quick_replays_a_culled_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/replay.py", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "replay.json").read_text())
    assert data["targets"]["voila"]["cold"]["n"] == 1
    replayed = data["targets"]["freezer pool"]["replay"]["10"]
    assert replayed["n"] == 1 and replayed["p50"] > 0
    assert "freezer pool, replayed" in proc.stdout


def test_roundtrip_benchmark_quick_measures_a_custom_message_on_both_servers(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/roundtrip.py", "--quick", "--custom", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "roundtrip_custom.json").read_text())
    assert data["measured"] == "custom message"
    for name in ("voila", "freezer pool"):
        target = data["targets"][name]
        assert target["errors"] == [], target["errors"]  # every message had its answer
        assert target["round_trip"]["n"] == len(target["samples"]) >= 20
        assert 0 < target["round_trip"]["p50"] <= target["round_trip"]["max"]
    assert (tmp_path / "roundtrip_custom.png").stat().st_size > 0
