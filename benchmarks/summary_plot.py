"""One PNG of the headline figures of BENCHMARKS.md, from the JSON files the benchmarks wrote.

    .venv/bin/python benchmarks/summary_plot.py --before DIR --after DIR [--load DIR ...]
        [--png benchmarks/plots/summary.png]

`--before` and `--after` are `--out` directories of `first_stage.py` and `roundtrip.py` runs
(the code before and after a change); each `--load` is the `--out` directory of one `load.py`
run (round trip p95 and memory are plotted against the number of people). Plain Voila's
figures come from the same runs as Freezer's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _p50(result: dict[str, Any], figure: str) -> float:
    value = result.get(figure, {}).get("p50")
    return float(value) * 1000.0 if value is not None else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--load", type=Path, action="append", default=[])
    parser.add_argument("--png", type=Path, default=HERE / "plots" / "summary.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 4 if args.load else 2
    figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
    bars = [("voila", "Voila"), ("freezer pool", "Freezer (pool)")]
    for axis, name, figs, title, budget in (
        (axes[0], "first_stage", ("first_stage", "reload"), "First stage / reload p50 (ms)",
         (250.0, 100.0)),
        (axes[1], "roundtrip", ("round_trip",), "Widget round trip p50 (ms)", None),
    ):
        labels: list[str] = []
        values: list[float] = []
        colors: list[str] = []
        for when, directory in (("before", args.before), ("after", args.after)):
            path = directory / f"{name}.json"
            if not path.is_file():
                continue
            targets = _load(path)["targets"]
            for key, label in bars:
                if key not in targets:
                    continue
                for fig in figs:
                    labels.append(f"{label}\n{fig.replace('_', ' ')}\n{when}")
                    values.append(_p50(targets[key], fig))
                    colors.append("#999999" if key == "voila" else "#1f77b4")
        axis.bar(range(len(values)), values, color=colors)
        axis.set_xticks(range(len(values)), labels, fontsize=6)
        axis.set_title(title, fontsize=9)
        axis.grid(axis="y", alpha=0.3)
        if budget:
            for line in budget:
                axis.axhline(line, color="red", linestyle="--", linewidth=0.8)
    if args.load:
        axis = axes[2]
        for key, label in bars:
            people, p95 = [], []
            for directory in args.load:
                data = _load(directory / "load.json")
                result = data["targets"].get(key, {})
                value = result.get("round_trip", {}).get("p95")
                if value is not None:
                    people.append(int(data["plan"]["people"]))
                    p95.append(float(value) * 1000.0)
            axis.plot(people, p95, marker="o", label=label)
        axis.axhline(100.0, color="red", linestyle="--", linewidth=0.8, label="budget")
        axis.set_xlabel("people")
        axis.set_title("Load: round trip p95 (ms)", fontsize=9)
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
        axis = axes[3]
        for key, label in bars:
            people, rss = [], []
            for directory in args.load:
                data = _load(directory / "load.json")
                value = data["targets"].get(key, {}).get("server_rss_mb_max")
                if value is not None:
                    people.append(int(data["plan"]["people"]))
                    rss.append(float(value) / 1024.0)
            axis.plot(people, rss, marker="o", label=label)
        axis.set_xlabel("people")
        axis.set_title("Load: memory, server + kernels (GB, max RSS)", fontsize=9)
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.png, dpi=100)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
