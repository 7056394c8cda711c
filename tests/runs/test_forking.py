"""Forked kernels (`--kernel-start fork`): they behave as spawned ones, and their parent is
started again when it died, started afresh for a rebuilt app, and given up (kernels spawned, the
log saying why) when its warm imports fail.

Through a real server (outputs, widgets, a stage timeout's interrupt, the parent dying) and
through jupyter_client's kernel manager in this process (interrupt, rebuild, failing import).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory

from runtime.runs.fork_kernel import command_line_config
from runtime.runs.forking import (
    PARENTS,
    UNKNOWN_EXIT,
    ForkedKernel,
    running_parents,
    use_forking,
)
from runtime.runs.kernel_start import process_ended
from tests.faults.harness import TIMEOUT, act, click_next, has_slider, shows, slider, text
from tests.runner.conftest import code, stage
from tests.runner.conftest import write_app as write_runner_app
from tests.server.conftest import SLIDER_STAGES, write_app
from tests.support.eventually import eventually
from tests.support.person import Person
from tests.support.processes import ServerProcess, child_pids, kernel_pid, start_server


def parent_of(pid: int) -> int:
    """The parent process id of `pid` (from /proc)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def fork_parents(server: ServerProcess) -> list[int]:
    """The server's fork parents (children running runtime.runs.fork_parent)."""
    return [pid for pid in child_pids(server.pid) if parent_of_is(pid, server.pid)
            and b"runtime.runs.fork_parent" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def parent_of_is(pid: int, parent: int) -> bool:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return parent_of(pid) == parent
    return False


async def serve(app: Path, *args: str) -> ServerProcess:
    return await asyncio.to_thread(start_server, app, "--pool-size", "0", *args)


async def slider_run(server: ServerProcess) -> tuple[str, int]:
    """Run the slider app to its end: (the page's text, the kernel's pid)."""
    async with Person(server.base_url, request_timeout=TIMEOUT) as person:
        page = await person.open("new")
        await page.wait_for(has_slider("number"), TIMEOUT, "the slider")
        assert page.kernel_id is not None
        pid = kernel_pid(server, page.kernel_id)
        await act(page, await page.set_value(slider(page, "number"), 21))
        await click_next(page)
        await page.wait_for(shows("doubled=42"), TIMEOUT, "doubled=42")
        shown = text(page)
        await page.close()
    return shown, pid


async def test_a_forked_kernel_shows_what_a_spawned_one_shows(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", SLIDER_STAGES)
    shown: dict[str, str] = {}
    for start in ("spawn", "fork"):
        server = await serve(app, "--kernel-start", start)
        try:
            shown[start], pid = await slider_run(server)
            parents = fork_parents(server)
            if start == "fork":
                assert parents and parent_of(pid) == parents[0], server.log_tail()
            else:
                assert not parents and parent_of(pid) == server.pid
        finally:
            server.stop()
    assert shown["fork"] == shown["spawn"]


async def test_a_stage_timeout_interrupts_a_forked_kernel(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", (
        ("Loop", "import ipywidgets as w\nstop = w.Checkbox(description='stop')\nstop",
         ("stop",)),
        ("Runaway", "while not stop.value:\n    pass\nprint('stopped looping')", ()),
    ))
    server = await serve(app, "--kernel-start", "fork", "--stage-timeout", "2")
    try:
        async with Person(server.base_url, request_timeout=TIMEOUT) as person:
            page = await person.open("new")
            await page.wait_for(lambda p: bool(p.find_all(_model_name="CheckboxModel")),
                                TIMEOUT, "the checkbox")
            assert page.kernel_id is not None
            assert parent_of(kernel_pid(server, page.kernel_id)) in fork_parents(server)
            await click_next(page)
            await page.wait_for(shows("took longer than"), TIMEOUT, "the timeout message")
            # the kernel was interrupted, not killed: it still runs the page's requests
            reply = await page.request("shell", "kernel_info_request", {})
            assert reply.content["status"] == "ok"
    finally:
        server.stop()


async def test_kernels_still_start_after_the_parent_died(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", SLIDER_STAGES)
    server = await serve(app, "--kernel-start", "fork")
    try:
        _, first = await slider_run(server)
        (parent,) = fork_parents(server)
        os.kill(parent, signal.SIGKILL)
        await eventually(lambda: process_ended(first), "its kernel to end")
        _, second = await slider_run(server)
        (again,) = fork_parents(server)
        assert again != parent and parent_of(second) == again
        assert "had died: a new one" in server.log_tail(200)
    finally:
        server.stop()


# --- in this process, through jupyter_client's kernel manager -------------------------------


@pytest.fixture
def forking() -> Iterator[None]:
    """Kernels of this process's kernel managers are forked; parents stopped afterwards."""
    factory = KernelProvisionerFactory.instance()
    before = factory.default_provisioner_name
    use_forking(factory)
    try:
        yield
    finally:
        factory.default_provisioner_name = before
        PARENTS.stop()


async def start_kernel(app: Path) -> tuple[AsyncKernelManager, Any]:
    manager = AsyncKernelManager(kernel_name="python3")
    env = {**os.environ, "FREEZER_APP_DIR": str(app), "PYTHONHASHSEED": "0"}
    await manager.start_kernel(env=env, cwd=str(app))
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=TIMEOUT)
    return manager, client


async def stop_kernel(manager: AsyncKernelManager, client: Any) -> None:
    client.stop_channels()
    await manager.shutdown_kernel(now=True)


def warm_app(directory: Path, warm_source: str, title: str = "x") -> Path:
    return write_runner_app(directory, [stage(0, title, [
        code(warm_source, "freeze:warm"), code(f"title = {title!r}"),
    ])])


async def test_a_forked_kernel_is_interrupted_polled_and_killed(
    tmp_path: Path, forking: None
) -> None:
    app = warm_app(tmp_path / "app", "import json")
    manager, client = await start_kernel(app)
    try:
        assert getattr(manager.provisioner, "forked", False)
        pid = manager.provisioner.pid  # type: ignore[union-attr]
        assert parent_of(pid) in running_parents()
        msg_id = client.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(600)")
        # Interrupt once the cell itself runs (its own output says so): a SIGINT that lands
        # while the kernel is still between `execute_input` and the cell is caught by
        # ipykernel's dispatcher, which then sends no reply at all.
        started = time.monotonic()
        while time.monotonic() - started < TIMEOUT:
            msg = await client.get_iopub_msg(timeout=TIMEOUT)
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream"
                    and "sleeping" in msg["content"].get("text", "")):
                break
        await manager.interrupt_kernel()
        reply = await client.get_shell_msg(timeout=TIMEOUT)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        assert await manager.is_alive()
    finally:
        await stop_kernel(manager, client)
    assert not await manager.is_alive()
    assert process_ended(pid)


async def test_a_rebuilt_app_gets_a_fresh_parent(tmp_path: Path, forking: None) -> None:
    app = warm_app(tmp_path / "app", "import json", title="first build")
    manager, client = await start_kernel(app)
    try:
        (first,) = running_parents()
        warm_app(app, "import json", title="second build")  # a new app_id in the same place
        again, again_client = await start_kernel(app)
        (second,) = running_parents()
        assert second != first
        pid = again.provisioner.pid  # type: ignore[union-attr]
        assert parent_of(pid) == second
        # the first parent stays while its kernel lives, and ends with it
        assert not process_ended(first)
        await stop_kernel(again, again_client)
    finally:
        await stop_kernel(manager, client)
    await eventually(lambda: process_ended(first), "the old parent to end")


async def test_a_failing_warm_import_spawns_kernels_and_says_why(
    tmp_path: Path, forking: None, caplog: pytest.LogCaptureFixture
) -> None:
    app = warm_app(tmp_path / "app", "import needs_a_kernel")
    (app / "needs_a_kernel.py").write_text(
        "from IPython import get_ipython\n"
        "if get_ipython() is None:\n"
        "    raise ImportError('needs a running kernel')\n"
    )
    caplog.set_level(logging.WARNING)
    manager, client = await start_kernel(app)
    try:
        assert not getattr(manager.provisioner, "forked", True)
        assert parent_of(manager.provisioner.pid) == os.getpid()  # type: ignore[union-attr]
        reply = await client.execute("import needs_a_kernel", reply=True, timeout=TIMEOUT)
        assert reply["content"]["status"] == "ok"  # in a kernel, the import works
    finally:
        await stop_kernel(manager, client)
    said = [r.getMessage() for r in caplog.records if "spawned, not forked" in r.getMessage()]
    assert said and "import needs_a_kernel" in said[0] and "needs a running kernel" in said[0]
    assert not running_parents()


def test_a_kernel_handle_over_a_pidfd_ends_and_ignores_signals_after() -> None:
    child = subprocess.Popen(["sleep", "600"])
    try:
        kernel = ForkedKernel(child.pid)
        assert kernel.poll() is None
        kernel.kill()
        child.wait(TIMEOUT)
        assert kernel.wait(TIMEOUT) == UNKNOWN_EXIT
        assert kernel.poll() == UNKNOWN_EXIT
        kernel.send_signal(signal.SIGINT)  # jupyter_client interrupts a dead kernel at shutdown
        kernel.terminate()
    finally:
        child.kill()
        child.wait()


async def test_kernels_started_together_share_one_parent(tmp_path: Path, forking: None) -> None:
    app = warm_app(tmp_path / "app", "import json")
    started = await asyncio.gather(start_kernel(app), start_kernel(app))
    try:
        (parent,) = running_parents()
        for manager, _ in started:
            assert getattr(manager.provisioner, "forked", False)
            assert parent_of(manager.provisioner.pid) == parent  # type: ignore[union-attr]
    finally:
        for manager, client in started:
            await stop_kernel(manager, client)


async def test_a_forked_kernel_listens_once_started_and_keeps_its_history_in_memory(
    tmp_path: Path, forking: None
) -> None:
    app = warm_app(tmp_path / "app", "import json")
    manager = AsyncKernelManager(kernel_name="python3")
    env = {**os.environ, "FREEZER_APP_DIR": str(app), "PYTHONHASHSEED": "0"}
    await manager.start_kernel(env=env, cwd=str(app))
    client = manager.client()
    try:
        assert getattr(manager.provisioner, "forked", False)
        info = manager.get_connection_info()
        # bound before start_kernel() returned: a connection is not refused
        for port in ("shell_port", "hb_port"):
            socket.create_connection((str(info["ip"]), int(info[port])), TIMEOUT).close()
        client.start_channels()
        await client.wait_for_ready(timeout=TIMEOUT)
        history = "(get_ipython().history_manager.enabled, " \
                  "type(get_ipython().history_manager.db).__name__, In[-1])"
        reply = await client.execute("x = 1", user_expressions={"h": history}, reply=True,
                                     timeout=TIMEOUT)
        shown = reply["content"]["user_expressions"]["h"]["data"]["text/plain"]
        assert shown == "(False, 'DummyDB', 'x = 1')"  # no sqlite file, no saving thread
    finally:
        await stop_kernel(manager, client)


def test_only_the_usual_kernel_command_line_skips_argparse() -> None:
    config = command_line_config(["-f", "/run/kernel-1.json"], 42)
    assert config is not None
    assert config.IPKernelApp.connection_file == "/run/kernel-1.json"
    assert config.IPKernelApp.parent_handle == 42
    for argv in (["-f"], ["-f", "--debug"], ["--IPKernelApp.x=1", "-f", "k.json"],
                 ["-f", "k.json", "--debug"]):
        assert command_line_config(argv, 42) is None


def spares_of(parent: int) -> list[int]:
    """The parent's spare children (forked ahead, not yet a kernel)."""
    found = []
    for pid in child_pids(parent):
        with contextlib.suppress(OSError):
            if b"(spare kernel)" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


async def test_the_next_kernel_is_the_spare_forked_ahead(tmp_path: Path, forking: None) -> None:
    app = warm_app(tmp_path / "app", "import json")
    manager, client = await start_kernel(app)
    try:
        (parent,) = running_parents()
        spares = await eventually(lambda: spares_of(parent), "a spare child")
        again, again_client = await start_kernel(app)
        try:
            assert again.provisioner.pid == spares[0]  # type: ignore[union-attr]
            reply = await again_client.execute("print('hi')", reply=True, timeout=TIMEOUT)
            assert reply["content"]["status"] == "ok"
            assert b"ipykernel_launcher" in Path(f"/proc/{spares[0]}/cmdline").read_bytes()
        finally:
            await stop_kernel(again, again_client)
        await eventually(lambda: spares_of(parent) and spares_of(parent) != spares,
                         "the next spare")
    finally:
        await stop_kernel(manager, client)


async def test_a_forked_kernel_has_the_widget_comm_targets(tmp_path: Path, forking: None) -> None:
    app = warm_app(tmp_path / "app", "import json")
    manager, client = await start_kernel(app)
    try:
        assert getattr(manager.provisioner, "forked", False)
        targets = "sorted(t for t in __import__('comm').get_comm_manager().targets " \
                  "if t.startswith('jupyter.widget'))"
        reply = await client.execute("", user_expressions={"t": targets}, reply=True,
                                     timeout=TIMEOUT)
        shown = reply["content"]["user_expressions"]["t"]["data"]["text/plain"]
        assert ast.literal_eval(shown) == ["jupyter.widget", "jupyter.widget.control"]
    finally:
        await stop_kernel(manager, client)
