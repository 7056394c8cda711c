"""A kernel's process counts as ended once it is a zombie, before anyone has reaped it."""

from __future__ import annotations

import os
import signal
import subprocess

from runtime.runs.kernel_start import process_ended


def test_a_killed_process_has_ended_before_and_after_it_is_reaped() -> None:
    child = subprocess.Popen(["sleep", "600"])
    try:
        assert not process_ended(child.pid)
        assert not process_ended(os.getpid())
        os.kill(child.pid, signal.SIGKILL)
        # wait for the exit without reaping: the child stays a zombie
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert process_ended(child.pid)
    finally:
        child.kill()
        child.wait()
    assert process_ended(child.pid)
