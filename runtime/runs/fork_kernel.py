"""The kernel app of a forked kernel: IPKernelApp, less what a fork child does not need to redo.

Imported by the fork parent before it forks (:mod:`runtime.runs.fork_parent`), used by each
child. It differs from the IPKernelApp a spawned kernel runs in five ways, each measured on the
forked child's start (benchmarks/kernel_start.py):

- **No argparse for the usual command line.** ipykernel's command line for a kernel of a
  kernelspec is `-f CONNECTION_FILE`; traitlets builds an argparse parser over every flag and
  alias of some thirty classes to read it (about a tenth of the child's start). For exactly that
  command line :meth:`ForkedKernelApp.parse_command_line` makes the same command-line config
  directly (`IPKernelApp.connection_file`, and the parent's pid as `parent_handle`); any other
  command line is parsed as usual.
- **History in memory.** IPython's history manager opens the profile's `history.sqlite`, writes
  a session row (a commit, so an fsync, on a file every kernel of the machine shares) and starts
  a saving thread: about half the child's start, more with many kernels. A Freezer run is rebuilt
  from its journal, never from IPython's history, and the runner runs its cells with
  `store_history=False`; so a forked kernel's history is kept in memory only
  (`HistoryManager.enabled = False`: `In`, `_i` and `%history` of the session still work, nothing
  is written to disk). A config file that enables it wins.
- **Prepared ahead.** In a spare child (:func:`runtime.runs.fork_parent.spare_kernel`) IPython's
  application start (:class:`PreparedBase`: profile directory, config files, crash handler) is
  run before the kernel's command line is known; the kernel's initialize then reads only its
  command line, which comes after the config files as it would.
- **Widgets' comm targets.** ipywidgets registers its comm targets when it is imported in a
  running shell; the parent imported it before any shell, so the child registers them once its
  kernel exists (:meth:`ForkedKernelApp.init_kernel`). A warm import of the app that registers
  something with IPython at import time has the same limit (it finds no shell in the parent).
- **Says when it listens.** Once its sockets are bound (before its shell is built) the kernel
  writes a byte on the file descriptor the parent gave it (`bound_fd`); the parent answers the
  server's fork request only then, so the server's client never connects to a port nobody listens
  on yet (zmq would retry only after its 100 ms reconnect interval).
"""

from __future__ import annotations

import contextlib
import os
from copy import deepcopy
from typing import Any

from ipykernel.kernelapp import IPKernelApp
from IPython.core.application import BaseIPythonApplication
from traitlets import Bool, Int
from traitlets.config import Config

FAST_ARGV_FLAG = "-f"


def command_line_config(argv: list[str], parent_handle: int) -> Config | None:
    """The config traitlets would read from `argv`, when `argv` is `-f FILE`; else None."""
    if len(argv) != 2 or argv[0] != FAST_ARGV_FLAG or argv[1].startswith("-"):
        return None
    config = Config()
    config.IPKernelApp.connection_file = argv[1]
    config.IPKernelApp.parent_handle = parent_handle
    return config


def history_config() -> Config:
    """History kept in memory only (see the module's docstring)."""
    config = Config()
    config.HistoryManager.enabled = False
    return config


class PreparedBase(BaseIPythonApplication):
    """IPython's application start (profile, config files, crash handler) run ahead of the
    kernel's command line (:meth:`ForkedKernelApp.prepared_instance`); when the kernel's own
    initialize comes, only its command line is read."""

    prepared = Bool(False).tag(config=False)

    def initialize(self, argv: Any = None) -> None:
        if self.prepared:
            self.parse_command_line(argv)
            return
        super().initialize(argv)  # type: ignore[no-untyped-call]


class ForkedKernelApp(IPKernelApp, PreparedBase):
    """IPKernelApp for a kernel forked from a warmed parent (see the module's docstring)."""

    bound_fd = Int(-1, help="a file descriptor to write one byte on once the sockets are bound "
                            "(then closed); -1 for none").tag(config=False)
    fast_parent_handle = Int(0).tag(config=False)

    @classmethod
    def prepared_instance(cls, parent_pid: int, bound_fd: int) -> ForkedKernelApp:
        """The app of a spare child, its IPython application start done (no command line yet:
        the kernel's is `-f FILE`, read by its initialize)."""
        app = cls.instance(config=history_config(), bound_fd=bound_fd,
                           fast_parent_handle=parent_pid)
        BaseIPythonApplication.initialize(app, [])  # type: ignore[no-untyped-call]
        app.prepared = True
        return app

    def run(self, argv: list[str]) -> None:
        """Initialize on the kernel's command line and run (a prepared app's launch_instance)."""
        self.initialize(argv)  # type: ignore[no-untyped-call]
        self.start()  # type: ignore[no-untyped-call]

    def parse_command_line(self, argv: Any = None) -> None:
        """The usual command line without argparse; any other one as IPKernelApp parses it."""
        config = None if argv is None else command_line_config(list(argv),
                                                               self.fast_parent_handle)
        if config is None:
            super().parse_command_line(argv)
            return
        self.argv = list(argv)
        self.extra_args = []
        self.cli_config = deepcopy(config)
        self.update_config(config)

    def init_kernel(self) -> None:
        """Create the kernel, then register the comm targets ipywidgets registers at its import
        when a shell exists: the parent imported it before there was one, so the child's kernel
        would lack `jupyter.widget.control` (a page's widget manager then waits for its answer,
        4 s in ipywidgets 8, before asking widget by widget) and `jupyter.widget`."""
        super().init_kernel()  # type: ignore[no-untyped-call]
        import ipywidgets

        ipywidgets.register_comm_target()

    def init_heartbeat(self) -> None:
        """Bind the heartbeat as usual, then say the kernel listens."""
        super().init_heartbeat()  # type: ignore[no-untyped-call]
        self.say_bound()

    def say_bound(self) -> None:
        """Write the byte on `bound_fd` (once); the reader may be gone already."""
        fd, self.bound_fd = self.bound_fd, -1
        if fd < 0:
            return
        with contextlib.suppress(OSError):
            os.write(fd, b"1")
        with contextlib.suppress(OSError):
            os.close(fd)


def launch(argv: list[str], parent_pid: int, bound_fd: int) -> None:
    """Run the kernel `argv` (ipykernel's arguments, without the program) asks for."""
    handle = [] if command_line_config(argv, parent_pid) else \
        [f"--IPKernelApp.parent_handle={parent_pid}"]
    # a kernel that fails before it binds ends, closing `bound_fd`: the parent stops waiting
    ForkedKernelApp.launch_instance(
        argv=[*argv, *handle], config=history_config(), bound_fd=bound_fd,
        fast_parent_handle=parent_pid,
    )

