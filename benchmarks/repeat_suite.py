"""Run the test suite N times in a row and count what passed and failed, run by run and test
by test: how a flaky test shows itself.

    .venv/bin/python benchmarks/repeat_suite.py 10                 # the whole suite, 10 times
    .venv/bin/python benchmarks/repeat_suite.py 5 tests/faults -k kernel
    .venv/bin/python benchmarks/repeat_suite.py 3 --out /tmp/repeat.json tests/server

Arguments after N go to pytest unchanged. Each run is `python -m pytest -q -rfE -p
no:cacheprovider ARGS` from the repository root; its output is kept in `--logs` (a temporary
directory by default) so a failure can be read afterwards. The summary names every test that
failed or errored in any run, with how many runs it failed in; `--out` also writes it as JSON.
Exit status: 0 when every run passed, 1 when any run failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUMMARY_LINE = re.compile(r"\bin [\d.]+s\b")
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")
FAILED_TEST = re.compile(r"^(FAILED|ERROR) (\S+)")


@dataclass
class RunResult:
    """One run of pytest: its exit status, counts, seconds and the tests that did not pass."""

    index: int
    status: int
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    log: str = ""

    @property
    def passed(self) -> bool:
        return self.status == 0


def read_output(text: str) -> tuple[dict[str, int], list[str]]:
    """The counts of pytest's last summary line and the FAILED/ERROR test ids of `-rfE`."""
    counts: dict[str, int] = {}
    for line in text.splitlines()[::-1]:
        if SUMMARY_LINE.search(line) and COUNT.search(line):
            for number, word in COUNT.findall(line):
                counts["errors" if word.startswith("error") else word] = int(number)
            break
    failed = []
    for line in text.splitlines():
        match = FAILED_TEST.match(line)
        if match:
            failed.append(f"{match.group(1)} {match.group(2)}")
    return counts, failed


def run_once(index: int, pytest_args: list[str], logs: Path) -> RunResult:
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
               *pytest_args]
    started = time.monotonic()
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    log = logs / f"run-{index:03d}.log"
    log.write_text(proc.stdout + proc.stderr)
    counts, failed = read_output(proc.stdout)
    return RunResult(index, proc.returncode, seconds, counts, failed, str(log))


def summarize(results: list[RunResult]) -> dict[str, object]:
    failing: Counter[str] = Counter()
    for result in results:
        failing.update(set(result.failed))
    return {
        "runs": len(results),
        "runs_passed": sum(1 for r in results if r.passed),
        "runs_failed": sum(1 for r in results if not r.passed),
        "tests_failed": dict(failing.most_common()),
        "results": [asdict(r) for r in results],
    }


def print_summary(summary: dict[str, object], results: list[RunResult]) -> None:
    print(f"\n{summary['runs_passed']} of {summary['runs']} runs passed, "
          f"{summary['runs_failed']} failed")
    for result in results:
        counts = ", ".join(f"{n} {word}" for word, n in result.counts.items()) or "no summary"
        verdict = "ok  " if result.passed else f"FAIL (exit {result.status})"
        print(f"  run {result.index:3d}: {verdict} {counts} in {result.seconds:.0f} s "
              f"({result.log})")
    failing = summary["tests_failed"]
    assert isinstance(failing, dict)
    if failing:
        print("tests that failed, and in how many runs:")
        for test, times in failing.items():
            print(f"  {times:3d} / {summary['runs']}  {test}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("times", type=int, help="how many runs in a row")
    parser.add_argument("--logs", type=Path, default=None,
                        help="directory for each run's output (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="write the summary as JSON")
    parser.add_argument("--stop-on-fail", action="store_true",
                        help="stop after the first run that fails")
    args, pytest_args = parser.parse_known_args(argv)
    if args.times < 1:
        parser.error("N must be at least 1")
    logs = args.logs or Path(tempfile.mkdtemp(prefix="repeat-suite-"))
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    for index in range(1, args.times + 1):
        print(f"run {index} of {args.times}: pytest {' '.join(pytest_args)}", flush=True)
        result = run_once(index, pytest_args, logs)
        results.append(result)
        print(f"  {'passed' if result.passed else 'FAILED'} in {result.seconds:.0f} s: "
              f"{result.counts}", flush=True)
        if args.stop_on_fail and not result.passed:
            break
    summary = summarize(results)
    print_summary(summary, results)
    if args.out is not None:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
