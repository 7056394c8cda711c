"""The journal benchmark still runs (a smoke run; figures are never asserted in tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "journal_append.py"


def test_journal_benchmark_quick_run() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick", "--no-postgres"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("sqlite")]
    assert "500 events" in line and "events/s" in line and "p99" in line
