"""How long seeding a run's working directory takes: copy (Freezer's way), hard links, overlay.

    .venv/bin/python benchmarks/run_files_seed.py [--files 200] [--megabytes 50] [--repeat 15]

Writes an app's `files/` of `--files` random files totalling `--megabytes` in a temporary
directory (on the same file system as the system's temporary directory, or `--dir`), then
seeds `--repeat` run directories each way and prints the median, min and max in ms:

- `copy` — :meth:`runtime.runs.runfiles.RunFiles.new_kernel_dir`, what the server does per kernel;
- `hardlink` — `os.link` per file: cheap, but unsafe (a notebook's `open(path, "w")` truncates
  the shared inode, changing the seed and every run's copy);
- `overlay` — an overlayfs mount (root only; skipped with the reason otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.runs.runfiles import RunFiles  # noqa: E402


def write_seed(seed: Path, files: int, megabytes: float) -> None:
    size = int(megabytes * 1024 * 1024 / files)
    for index in range(files):
        directory = seed / f"d{index % 10}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{index}.bin").write_bytes(os.urandom(size))


def hard_links(seed: Path, target: Path) -> None:
    shutil.copytree(seed, target, symlinks=True, copy_function=os.link)


def overlay(seed: Path, target: Path) -> None:
    upper, work = target.with_name(target.name + ".upper"), target.with_name(target.name + ".work")
    for path in (target, upper, work):
        path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={seed},upperdir={upper},workdir={work}", str(target)],
                   check=True, capture_output=True)


def measure(name: str, seed_one: Callable[[Path], object], root: Path, repeat: int) -> None:
    times = []
    targets = []
    try:
        for index in range(repeat):
            target = root / f"{name}-{index}"
            started = time.perf_counter()
            made = seed_one(target)
            times.append((time.perf_counter() - started) * 1000)
            targets.append(made if isinstance(made, Path) else target)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"{name:9s} skipped: {exc}")
        return
    finally:
        for target in targets:
            if name == "overlay":
                subprocess.run(["umount", str(target)], capture_output=True)
            shutil.rmtree(target, ignore_errors=True)
    print(f"{name:9s} median {statistics.median(times):7.1f} ms   min {min(times):7.1f}"
          f"   max {max(times):7.1f}   (n={len(times)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--megabytes", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--dir", default=None, help="where to write (default: the temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        root = Path(scratch)
        seed = root / "files"
        write_seed(seed, args.files, args.megabytes)
        print(f"seed: {args.files} files, {args.megabytes:g} MB in {seed}")
        run_files = RunFiles(root / "runs", seed)
        run_files.start()
        measure("copy", lambda _target: asyncio.run(run_files.new_kernel_dir()), root,
                args.repeat)
        measure("hardlink", lambda target: hard_links(seed, target), root, args.repeat)
        if os.geteuid() == 0:
            measure("overlay", lambda target: overlay(seed, target), root, args.repeat)
        else:
            print("overlay   skipped: mounting needs root (CAP_SYS_ADMIN)")


if __name__ == "__main__":
    main()
