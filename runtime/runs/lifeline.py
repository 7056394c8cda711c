"""Kernel side: a kernel ends the moment the server that started it ends.

jupyter_client starts every kernel in a session of its own, so a signal to the server's process
group (a supervisor stopping it, a terminal closing) never reaches the kernels; ipykernel notices
a dead parent only by polling once a second, and not at all when the kernel is re-parented to a
process other than init (a container's sub-reaper). Linux's parent-death signal has the kernel
killed by the system as its parent ends. The server runs :func:`die_with_parent` in each kernel
right after starting it (`runtime.runs.live.prepare_code`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> bool:
    """Have Linux SIGKILL this process when its parent, the server `parent_pid`, ends.

    Returns whether the signal is armed: not off Linux, not where `prctl` refuses, and not when
    this process's parent is not the server (a kernelspec whose launcher stays in between; the
    server ending then is left to ipykernel's poll, as before).
    """
    if not sys.platform.startswith("linux") or os.getppid() != parent_pid:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:  # the server ended while the signal was being armed
        os._exit(1)
    return True
