"""Kernel starts that fail and kernels that outlive their server.

- A port collision: the kernel's shell port is already bound by another socket when the kernel
  binds it (`ZMQError: Address already in use`, as when another process took the port between
  jupyter_client picking it and the kernel binding it). The kernelspec's launcher below makes
  that happen for real, once, whenever a marker file exists.
- The server's process group SIGKILLed (a supervisor, a closed terminal): jupyter_client starts
  kernels in sessions of their own, so the signal does not reach them; they must end with the
  server. The test process becomes a child sub-reaper, so that the orphaned kernels are
  re-parented to it and it can read how each one ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import TIMEOUT, act, has_slider, slider, write_app
from tests.faults.test_kernel_deaths import kernel_pids
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, start_server

COLLIDING_LAUNCHER = """\
import json, os, socket, sys
marker = sys.argv[1]
connection_file = sys.argv[sys.argv.index("-f") + 1]
try:
    os.rename(marker, marker + ".taken")
except FileNotFoundError:
    pass
else:
    info = json.load(open(connection_file))
    taken = socket.socket()
    taken.bind((info["ip"], info["shell_port"]))
    taken.listen()
    taken.set_inheritable(True)  # the kernel itself holds its own shell port: it cannot bind
argv = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file]
os.execv(sys.executable, argv)
"""
PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture
def colliding_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `python3` kernelspec whose next start collides on its shell port once `MARKER`
    exists; returns the marker's path (the server finds the spec through JUPYTER_PATH)."""
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    launcher = tmp_path / "colliding_launcher.py"
    launcher.write_text(COLLIDING_LAUNCHER)
    marker = tmp_path / "collide"
    spec = {
        "argv": [sys.executable, str(launcher), str(marker), "-f", "{connection_file}"],
        "display_name": "Python 3 (colliding)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return marker


async def test_a_start_that_collides_on_a_port_is_tried_again(
    tmp_path: Path, colliding_kernels: Path
) -> None:
    app_dir = write_app(tmp_path / "app")
    server = start_server(app_dir, "--pool-size", "0")
    try:
        async with Person(server.base_url, request_timeout=TIMEOUT) as person:
            colliding_kernels.touch()
            page = await person.open("new")
            await page.wait_for(has_slider("number"), TIMEOUT)
            await act(page, await page.set_value(slider(page, "number"), 9))
        assert not colliding_kernels.exists()
        assert Path(str(colliding_kernels) + ".taken").exists()
        log = server.log_tail(400)
        assert "Address already in use" in log  # the collision was real
        assert "start 1 of 3" in log
    finally:
        server.stop()


@contextlib.contextmanager
def child_subreaper() -> Iterator[None]:
    """Orphaned descendants are re-parented to this process (Linux) while the block runs."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) is not available")
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def reaped(pid: int) -> tuple[int] | None:
    """The wait status of an ended child, or None while it runs (or is not a child yet)."""
    try:
        waited, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None  # not re-parented to this process yet
    return (status,) if waited == pid else None


async def test_kernels_end_with_the_server_when_its_process_group_is_killed(
    tmp_path: Path,
) -> None:
    app_dir = write_app(tmp_path / "app")
    with child_subreaper():
        server: ServerProcess = start_server(app_dir, "--pool-size", "1")
        try:
            async with Person(server.base_url, request_timeout=TIMEOUT) as person:
                page = await person.open("new")
                await page.wait_for(has_slider("number"), TIMEOUT)
                await eventually(lambda: len(kernel_pids(server)) == 2,
                                 "the run's kernel and a pool kernel")
                kernels = kernel_pids(server)
                os.killpg(server.pid, signal.SIGKILL)
                server.process.wait(TIMEOUT)
                statuses = {}
                for pid in kernels:
                    (statuses[pid],) = await eventually(lambda pid=pid: reaped(pid),
                                                        f"kernel {pid} to end")
        finally:
            server.stop()
    # ended by the system as the server ended, not by ipykernel polling for its parent later
    assert all(os.WIFSIGNALED(s) and os.WTERMSIG(s) == signal.SIGKILL
               for s in statuses.values()), statuses
