"""Kernel start, forked (`--kernel-start fork`) against spawned (`spawn`): p50 and p95.

Each start is timed from `AsyncKernelManager.start_kernel()` to the kernel's first
`kernel_info_reply` (one request, sent at once: the kernel answers on its shell socket), and
the process launch alone (until
`start_kernel()` returns). The kernels run the bundled pipeline app's environment
(`FREEZER_APP_DIR`), one at a time, each shut down before the next, a spawned and a forked one
in turn; the forked ones come from one parent, started (and warmed) before the first timed
start. No pool, no server: the kernel start the run service waits on when no pool kernel is
left.

    .venv/bin/python benchmarks/kernel_start.py [--starts 20] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    RESULTS_DIR,
    build_app,
    environment,
    percentile,
    print_table,
    write_json,
    write_pipeline_notebook,
)
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory

from runtime.runs.forking import use_forking


async def one_start(app_dir: Path) -> tuple[float, float, bool]:
    """(seconds to launch, seconds to the first kernel_info reply, forked?) of one kernel."""
    manager = AsyncKernelManager(kernel_name="python3")
    env = {**os.environ, "FREEZER_APP_DIR": str(app_dir), "PYTHONHASHSEED": "0"}
    started = time.perf_counter()
    await manager.start_kernel(env=env, cwd=str(app_dir))
    launched = time.perf_counter() - started
    client = manager.client()
    client.start_channels()
    try:
        # one request: zmq holds it until the kernel has bound its shell socket
        msg_id = client.kernel_info()
        while (await client.get_shell_msg(timeout=120))["parent_header"].get("msg_id") != msg_id:
            pass
        answered = time.perf_counter() - started
    finally:
        client.stop_channels()
        forked = bool(getattr(manager.provisioner, "forked", False))
        await manager.shutdown_kernel(now=True)
    return launched, answered, forked


async def measure(app_dir: Path, starts: int) -> dict[str, Any]:
    """`starts` starts of each kind, alternating (a loaded machine slows both alike)."""
    factory = KernelProvisionerFactory.instance()
    spawn_default = factory.default_provisioner_name
    use_forking(factory)
    await one_start(app_dir)  # starts and warms the parent: not a kernel start
    samples: dict[str, dict[str, list[float]]] = {
        mode: {"launch": [], "answer": [], "forked": []} for mode in ("spawn", "fork")
    }
    for _ in range(starts):
        for mode in ("spawn", "fork"):
            if mode == "fork":
                use_forking(factory)
            else:
                factory.default_provisioner_name = spawn_default
            launch, answer, was_forked = await one_start(app_dir)
            samples[mode]["launch"].append(launch)
            samples[mode]["answer"].append(answer)
            samples[mode]["forked"].append(float(was_forked))
    factory.default_provisioner_name = spawn_default
    return {
        mode: {
            "launch_s": got["launch"],
            "answer_s": got["answer"],
            "forked": int(sum(got["forked"])),
            "launch_p50": percentile(got["launch"], 50),
            "answer_p50": percentile(got["answer"], 50),
            "answer_p95": percentile(got["answer"], 95),
        }
        for mode, got in samples.items()
    }


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--starts", type=int, default=20, help="kernel starts per mode (20)")
    args.add_argument("--out", type=Path, default=RESULTS_DIR)
    opts = args.parse_args()
    with tempfile.TemporaryDirectory(prefix="freezer-bench-start-") as tmp:
        notebook = write_pipeline_notebook(Path(tmp) / "pipeline.ipynb", stages=2)
        app_dir = Path(tmp) / "app"
        error = build_app(notebook, app_dir)
        if error:
            print(f"cannot build the app: {error}", file=sys.stderr)
            return 1
        results = asyncio.run(measure(app_dir, opts.starts))
    rows = [
        [mode, f"{r['launch_p50'] * 1000:.0f} ms", f"{r['answer_p50'] * 1000:.0f} ms",
         f"{r['answer_p95'] * 1000:.0f} ms", f"{r['forked']}/{len(r['answer_s'])}"]
        for mode, r in results.items()
    ]
    print_table(["start", "launch p50", "answers p50", "answers p95", "forked"], rows)
    ratio = results["fork"]["answer_p50"] / results["spawn"]["answer_p50"]
    print(f"fork / spawn (answers p50): {ratio:.2f}")
    write_json(opts.out, "kernel_start", {"benchmark": "kernel_start", **environment(),
                                          "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
